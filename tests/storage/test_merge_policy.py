from seqfast.storage.merge_policy import MergePolicy, SegmentSize


def sizes(*rows: int) -> list[SegmentSize]:
    return [SegmentSize(i, i, r) for i, r in enumerate(rows)]


def test_nothing_to_merge_below_fan_in() -> None:
    assert MergePolicy(fan_in=4, base_rows=100).choose(sizes(10, 10, 10)) == []


def test_merges_first_run_of_fan_in_neighbours_in_one_tier() -> None:
    policy = MergePolicy(fan_in=4, base_rows=100, max_rows=10_000)
    assert policy.choose(sizes(5000, 10, 10, 10, 10, 10)) == [1, 2, 3, 4]


def test_a_segment_of_another_tier_breaks_the_run() -> None:
    policy = MergePolicy(fan_in=3, base_rows=100, max_rows=100_000)
    assert policy.choose(sizes(10, 10, 1000, 10, 10)) == []
    assert policy.choose(sizes(10, 10, 1000, 10, 10, 10)) == [3, 4, 5]


def test_never_grows_past_max_rows() -> None:
    policy = MergePolicy(fan_in=2, base_rows=10, max_rows=100)
    assert policy.choose(sizes(60, 60)) == []
    assert policy.choose(sizes(100, 5, 5)) == [1, 2]


def test_every_choice_is_a_contiguous_run() -> None:
    policy = MergePolicy(fan_in=4, base_rows=64)
    segs = sizes(*([64] * 9 + [700] * 5 + [64] * 4))
    chosen = policy.choose(segs)
    assert chosen and chosen == list(range(chosen[0], chosen[0] + len(chosen)))
