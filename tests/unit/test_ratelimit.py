"""The per-connection rate limiter, on a fake clock."""

from sessions_app.ratelimit import (
    ConnectionLimiter,
    MalformedBudget,
    RateLimits,
    TokenBucket,
    Verdict,
)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=4.0, clock=clock)
    assert [bucket.take() for _ in range(5)] == [True] * 4 + [False]
    clock.now += 1.0
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    clock.now += 100
    assert bucket.tokens <= 4.0
    assert bucket.take(4.0)
    assert not bucket.take(0.5)


def test_real_time_audio_passes_and_twice_real_time_still_passes() -> None:
    clock = Clock()
    limiter = ConnectionLimiter(RateLimits(audio_rate_factor=2.0), clock)
    for _ in range(600):  # 60 s of 100 ms chunks at 2x real time
        assert limiter.check("audio", 0.1) is Verdict.ACCEPT
        clock.now += 0.05
    assert limiter.dropped == 0


def test_a_flood_is_warned_once_then_closed_when_it_goes_on() -> None:
    clock = Clock()
    limiter = ConnectionLimiter(RateLimits(audio_rate_factor=2.0, flood_close_s=3.0), clock)
    verdicts = []
    while Verdict.CLOSE not in verdicts and clock.now < 120:
        verdicts.append(limiter.check("audio", 0.1))  # 10x real time
        clock.now += 0.01
    assert verdicts.count(Verdict.DROP_AND_WARN) == 1
    assert verdicts[-1] is Verdict.CLOSE
    first_drop = verdicts.index(Verdict.DROP_AND_WARN)
    assert 2.9 <= (len(verdicts) - 1 - first_drop) * 0.01 <= 3.2  # closed after ~3 s of flood


def test_a_short_burst_is_warned_and_forgiven() -> None:
    clock = Clock()
    limiter = ConnectionLimiter(RateLimits(frames_per_s=4.0), clock)
    burst = [limiter.check("frame") for _ in range(12)]
    assert burst[:8] == [Verdict.ACCEPT] * 8
    assert burst[8] is Verdict.DROP_AND_WARN
    assert set(burst[9:]) == {Verdict.DROP}
    clock.now += 5  # quiet, then normal use again
    for _ in range(20):
        assert limiter.check("frame") is Verdict.ACCEPT
        clock.now += 0.5
    clock.now += 5
    again = [limiter.check("frame") for _ in range(10)]
    assert again.count(Verdict.DROP_AND_WARN) == 1  # a new flood warns again


def test_texts_per_minute() -> None:
    clock = Clock()
    limiter = ConnectionLimiter(RateLimits(texts_per_min=30), clock)
    accepted = 0
    for _ in range(120):  # two minutes, a text every second
        accepted += limiter.check("text") is Verdict.ACCEPT
        clock.now += 1.0
    assert 60 <= accepted <= 66  # 30 a minute, plus the initial burst of 5


def test_malformed_messages_close_past_the_budget_of_a_minute() -> None:
    clock = Clock()
    budget = MalformedBudget(per_min=5, clock=clock)
    assert [budget.spend() for _ in range(5)] == [False] * 5
    assert budget.spend()  # the sixth within a minute


def test_the_malformed_budget_is_a_sliding_minute() -> None:
    clock = Clock()
    budget = MalformedBudget(per_min=3, clock=clock)
    for _ in range(30):  # one every 20 s: three in any minute, never more
        assert not budget.spend()
        clock.now += 20.0
    clock.now -= 19.0  # a fourth one within a minute of the last three
    assert budget.spend()


def test_a_malformed_budget_of_zero_never_closes() -> None:
    budget = MalformedBudget(per_min=0, clock=Clock())
    assert not any(budget.spend() for _ in range(1000))
