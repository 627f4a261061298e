// Sends events to a Seq-compatible server with the npm `seq-logging` package, as a Node.js
// application would.
//
// Input (stdin, JSON): {"serverUrl", "apiKey" (optional), "events": [{"timestamp" (ISO 8601
// text, made a Date here), "level", "messageTemplate", "properties", "exception", "traceId",
// "spanId"}]}.
// Output (stdout, JSON): {"errors": [...]} — every error the logger reported; the exit status
// is 1 when there was any.
import { Logger } from "seq-logging";

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

const spec = await readStdin();
const errors = [];
const logger = new Logger({
  serverUrl: spec.serverUrl,
  apiKey: spec.apiKey ?? null,
  maxBatchingTime: 50,
  retryDelay: 100,
  maxRetries: 1,
  requestTimeout: 10000,
  onError: (e) => errors.push(String(e && e.stack ? e.stack : e)),
});

for (const event of spec.events) {
  const { timestamp, ...rest } = event;
  logger.emit({ ...rest, timestamp: new Date(timestamp) });
}
await logger.close();

process.stdout.write(JSON.stringify({ errors }) + "\n");
process.exitCode = errors.length ? 1 : 0;
