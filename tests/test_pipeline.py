"""The pipeline state machine, byte for byte, with no socket and no server.

Every rule that decides correctness under concurrency (which tube a command
runs in, what cancellation leaves behind, what a lost connection means, which
reservation a job belongs to, how much may be buffered) is checked here in
microseconds; tests/test_safety.py checks the same rules against a real
beanstalkd.
"""

from __future__ import annotations

from typing import Any, Optional

import pytest

from beanstalkt import errors
from beanstalkt.models import Job
from beanstalkt.pipeline import Pipeline
from beanstalkt.protocol import COMMANDS, ProtocolError, encode_command, encode_put


class Token:
    """A caller's handle; ``abandoned`` plays a cancelled future."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.abandoned = False

    def __repr__(self) -> str:
        return f"Token({self.name!r})"


def make_pipeline(**kwargs: Any) -> Pipeline:
    pipeline = Pipeline(is_abandoned=lambda token: token.abandoned, **kwargs)
    pipeline.connection_made()
    return pipeline


def put(
    pipeline: Pipeline, body: bytes = b"x", tube: Optional[str] = None, name: str = ""
) -> Token:
    token = Token(name or body.decode())
    pipeline.send(token, COMMANDS["put"], encode_put(body, 0, 0, 60), None, tube=tube)
    return token


def command(pipeline: Pipeline, name: str, *args: Any, **kwargs: Any) -> Token:
    spec = COMMANDS[name]
    line = encode_command(spec.name, *args)
    token = Token(line.decode().strip())
    pipeline.send(token, spec, line, line, **kwargs)
    return token


def use(pipeline: Pipeline, tube: str) -> Token:
    return command(pipeline, "use", tube.encode(), tube=tube)


def reserved(job_id: int, body: bytes = b"job") -> bytes:
    return b"RESERVED %d %d\r\n%b\r\n" % (job_id, len(body), body)


def stats_job(job_id: int, priority: int) -> bytes:
    yaml = b"---\nid: %d\ntube: default\nstate: reserved\npri: %d\n" % (job_id, priority)
    return b"OK %d\r\n%b\r\n" % (len(yaml), yaml)


# --------------------------------------------------------------------------
# FIFO and framing.


def test_replies_answer_commands_in_the_order_they_were_written() -> None:
    pipeline = make_pipeline()
    first, second = put(pipeline, b"a"), put(pipeline, b"b")
    assert pipeline.data_to_send() == b"put 0 0 60 1\r\na\r\nput 0 0 60 1\r\nb\r\n"
    assert pipeline.receive_data(b"INSERTED 7\r\nINSERTED 8\r\n") == [
        (first, True, 7),
        (second, True, 8),
    ]
    assert pipeline.owed == 0


def test_replies_split_at_every_byte_give_the_same_events() -> None:
    replies = b"INSERTED 1\r\n" + reserved(5, b"body") + b"NOT_FOUND\r\n"
    for split in range(1, len(replies)):
        pipeline = make_pipeline()
        tokens = [put(pipeline), command(pipeline, "reserve"), command(pipeline, "peek", 9)]
        pipeline.data_to_send()
        events = pipeline.receive_data(replies[:split]) + pipeline.receive_data(replies[split:])
        assert [token for token, _ok, _value in events] == tokens
        assert events[0][1:] == (True, 1)
        assert events[1][2] == {"id": 5, "body": b"body"}
        assert isinstance(events[2][2], errors.NotFound)


def test_nothing_is_sent_before_a_connection() -> None:
    pipeline = Pipeline()
    put(pipeline)
    assert pipeline.data_to_send() == b""
    pipeline.connection_made()
    assert pipeline.data_to_send() == b"put 0 0 60 1\r\nx\r\n"


def test_garbage_raises_with_the_results_of_the_replies_before_it() -> None:
    pipeline = make_pipeline()
    first, _second = put(pipeline), put(pipeline)
    pipeline.data_to_send()
    with pytest.raises(ProtocolError) as caught:
        pipeline.receive_data(b"INSERTED 1\r\nWHAT\r\n")
    assert caught.value.events == [(first, True, 1)]


def test_a_reply_to_no_command_is_out_of_sync() -> None:
    pipeline = make_pipeline()
    with pytest.raises(ProtocolError, match="to no command"):
        pipeline.receive_data(b"INSERTED 1\r\n")


# --------------------------------------------------------------------------
# The tube on the wire.


def test_put_to_another_tube_brings_its_own_use_and_plain_puts_go_back() -> None:
    pipeline = make_pipeline()
    put(pipeline, b"a")
    put(pipeline, b"b", tube="emails")
    put(pipeline, b"c", tube="emails")
    put(pipeline, b"d")
    assert pipeline.data_to_send() == (
        b"put 0 0 60 1\r\na\r\n"
        b"use emails\r\nput 0 0 60 1\r\nb\r\nput 0 0 60 1\r\nc\r\n"
        b"use default\r\nput 0 0 60 1\r\nd\r\n"
    )
    events = pipeline.receive_data(
        b"INSERTED 1\r\nUSING emails\r\nINSERTED 2\r\nINSERTED 3\r\nUSING default\r\nINSERTED 4\r\n"
    )
    assert [value for _token, _ok, value in events] == [1, 2, 3, 4]  # the uses are internal
    assert pipeline.used_tube == "default"


def test_use_changes_the_clients_tube_at_the_call() -> None:
    pipeline = make_pipeline()
    put(pipeline, b"a")
    use(pipeline, "jobs")
    put(pipeline, b"b")
    put(pipeline, b"c", tube="default")
    assert pipeline.used_tube == "jobs"
    assert pipeline.data_to_send() == (
        b"put 0 0 60 1\r\na\r\nuse jobs\r\nput 0 0 60 1\r\nb\r\n"
        b"use default\r\nput 0 0 60 1\r\nc\r\n"
    )


@pytest.mark.parametrize("name", ["peek-ready", "peek-delayed", "peek-buried", "list-tube-used"])
def test_every_used_tube_command_follows_the_same_rule(name: str) -> None:
    pipeline = make_pipeline(use="mine")
    command(pipeline, name, tube="theirs")
    command(pipeline, name)
    assert pipeline.data_to_send() == b"use theirs\r\n%b\r\nuse mine\r\n%b\r\n" % (
        name.encode(),
        name.encode(),
    )


def test_a_new_connection_is_on_default_so_the_clients_tube_comes_back_with_the_next_put() -> None:
    pipeline = make_pipeline(use="jobs")
    put(pipeline, b"a")
    assert pipeline.data_to_send() == b"use jobs\r\nput 0 0 60 1\r\na\r\n"
    pipeline.receive_data(b"USING jobs\r\nINSERTED 1\r\n")
    pipeline.connection_lost("lost")
    pipeline.connection_made()
    put(pipeline, b"b")
    assert pipeline.data_to_send() == b"use jobs\r\nput 0 0 60 1\r\nb\r\n"


def test_a_put_that_waited_through_a_drop_is_routed_on_the_new_connection() -> None:
    # Queued while the old connection was on "emails": on the new one (on
    # "default") it still needs its use, which is decided when it is written.
    pipeline = make_pipeline()
    put(pipeline, b"a", tube="emails")
    pipeline.data_to_send()
    pipeline.receive_data(b"USING emails\r\nINSERTED 1\r\n")
    pipeline.connection_lost("lost")
    waiting = put(pipeline, b"b", tube="emails")
    pipeline.connection_made()
    assert pipeline.data_to_send() == b"use emails\r\nput 0 0 60 1\r\nb\r\n"
    assert pipeline.receive_data(b"USING emails\r\nINSERTED 2\r\n") == [(waiting, True, 2)]


# --------------------------------------------------------------------------
# Cancellation.


def test_an_abandoned_command_not_yet_written_is_never_sent() -> None:
    pipeline = make_pipeline()
    first = put(pipeline, b"a")
    put(pipeline, b"b")
    first.abandoned = True
    assert pipeline.data_to_send() == b"put 0 0 60 1\r\nb\r\n"
    assert pipeline.pending == 1
    assert pipeline.pending_bytes == len(b"put 0 0 60 1\r\nb\r\n")


def test_discard_removes_a_waiting_command_and_its_bytes_at_once() -> None:
    pipeline = Pipeline()
    token = put(pipeline, b"x" * 1000)
    assert pipeline.pending_bytes > 1000
    assert pipeline.discard(token) is True
    assert pipeline.pending == 0
    assert pipeline.pending_bytes == 0
    assert pipeline.discard(token) is False


def test_a_job_for_an_abandoned_reserve_is_released_with_its_own_priority() -> None:
    pipeline = make_pipeline()
    reserve = command(pipeline, "reserve")
    pipeline.data_to_send()
    reserve.abandoned = True
    assert pipeline.receive_data(reserved(42)) == []
    assert pipeline.data_to_send() == b"stats-job 42\r\n"
    assert pipeline.receive_data(stats_job(42, priority=17)) == []
    assert pipeline.data_to_send() == b"release 42 17 0\r\n"
    assert pipeline.receive_data(b"RELEASED\r\n") == []
    assert pipeline.owed == 0
    assert pipeline.pending_bytes == 0


@pytest.mark.parametrize("name", ["reserve-with-timeout", "reserve-job"])
def test_other_abandoned_reservations_are_given_back_too(name: str) -> None:
    pipeline = make_pipeline()
    token = command(pipeline, name, 5)
    pipeline.data_to_send()
    token.abandoned = True
    assert pipeline.receive_data(reserved(3)) == []
    assert pipeline.data_to_send() == b"stats-job 3\r\n"


def test_an_abandoned_reserve_that_times_out_leaves_nothing_behind() -> None:
    pipeline = make_pipeline()
    token = command(pipeline, "reserve-with-timeout", 1)
    pipeline.data_to_send()
    token.abandoned = True
    assert pipeline.receive_data(b"TIMED_OUT\r\n") == []
    assert not pipeline.has_data_to_send


def test_a_give_back_whose_job_is_gone_stops_there() -> None:
    pipeline = make_pipeline()
    token = command(pipeline, "reserve")
    pipeline.data_to_send()
    token.abandoned = True
    pipeline.receive_data(reserved(42))
    pipeline.data_to_send()
    assert pipeline.receive_data(b"NOT_FOUND\r\n") == []
    assert pipeline.data_to_send() == b""


def test_a_new_reserve_adopts_an_abandoned_blocking_reserve_instead_of_doubling_it() -> None:
    pipeline = make_pipeline()
    first = command(pipeline, "reserve")
    assert pipeline.data_to_send() == b"reserve\r\n"
    first.abandoned = True
    second = command(pipeline, "reserve")
    assert pipeline.data_to_send() == b""  # the server's pending reserve serves it
    assert pipeline.receive_data(reserved(9)) == [(second, True, {"id": 9, "body": b"job"})]


def test_no_adoption_when_something_was_written_after_the_abandoned_reserve() -> None:
    pipeline = make_pipeline()
    first = command(pipeline, "reserve")
    pipeline.data_to_send()
    command(pipeline, "watch", b"other")
    pipeline.data_to_send()
    first.abandoned = True
    command(pipeline, "reserve")
    assert pipeline.data_to_send() == b"reserve\r\n"


def test_no_adoption_of_a_reserve_with_timeout() -> None:
    pipeline = make_pipeline()
    first = command(pipeline, "reserve-with-timeout", 5)
    pipeline.data_to_send()
    first.abandoned = True
    command(pipeline, "reserve")
    assert pipeline.data_to_send() == b"reserve\r\n"


# --------------------------------------------------------------------------
# Reservations.


def reserve_job(pipeline: Pipeline, job_id: int = 1) -> Job:
    token = command(pipeline, "reserve")
    pipeline.data_to_send()
    [(answered, succeeded, job)] = pipeline.receive_data(reserved(job_id))
    assert answered is token and succeeded
    assert isinstance(job, Job)
    return job


def test_a_reserved_job_knows_its_connection_and_is_acknowledged_while_it_lives() -> None:
    pipeline = make_pipeline()
    job = reserve_job(pipeline)
    assert job.reservation is pipeline.reservation
    token = command(pipeline, "delete", job.id, reservation=job.reservation)
    assert pipeline.data_to_send() == b"delete 1\r\n"
    assert pipeline.receive_data(b"DELETED\r\n") == [(token, True, None)]


@pytest.mark.parametrize("name", ["delete", "touch", "bury", "release"])
def test_a_job_from_a_lost_connection_is_refused_before_anything_is_sent(name: str) -> None:
    pipeline = make_pipeline()
    job = reserve_job(pipeline)
    pipeline.connection_lost("server restarted")
    pipeline.connection_made()  # a new connection: ids may start again at 1
    with pytest.raises(errors.ReservationLost, match="has since been lost"):
        command(pipeline, name, job.id, reservation=job.reservation)
    assert pipeline.pending == 0
    assert pipeline.data_to_send() == b""


def test_a_job_of_another_client_is_a_value_error() -> None:
    job = reserve_job(make_pipeline())
    with pytest.raises(ValueError, match="reserved by another client"):
        command(make_pipeline(), "delete", job.id, reservation=job.reservation)


def test_peeked_jobs_carry_no_reservation() -> None:
    pipeline = make_pipeline()
    command(pipeline, "peek", 4)
    pipeline.data_to_send()
    [(_token, _ok, job)] = pipeline.receive_data(b"FOUND 4 1\r\nx\r\n")
    assert job.reservation is None


# --------------------------------------------------------------------------
# A lost connection.


def test_written_commands_fail_and_unwritten_ones_wait() -> None:
    pipeline = make_pipeline()
    written = put(pipeline, b"a")
    pipeline.data_to_send()
    waiting = put(pipeline, b"b")
    [(token, succeeded, error)] = pipeline.connection_lost("connection reset")
    assert token is written and not succeeded
    assert isinstance(error, errors.ConnectionLost)
    assert str(error) == "connection reset; outcome of 'put' unknown"
    assert pipeline.unsent_tokens() == [waiting]
    pipeline.connection_made()
    assert pipeline.data_to_send() == b"put 0 0 60 1\r\nb\r\n"


def test_unwritten_acknowledgements_end_with_the_reservation() -> None:
    pipeline = make_pipeline()
    job = reserve_job(pipeline)
    by_job = command(pipeline, "delete", job.id, reservation=job.reservation)
    by_id = command(pipeline, "touch", job.id)
    unrelated = command(pipeline, "peek", job.id)
    events = {token: error for token, _ok, error in pipeline.connection_lost("gone")}
    assert isinstance(events[by_job], errors.ReservationLost)
    assert type(events[by_id]) is errors.ConnectionLost
    assert pipeline.unsent_tokens() == [unrelated]


def test_closing_fails_everything_unwritten_as_not_connected() -> None:
    pipeline = make_pipeline()
    token = put(pipeline)
    [(failed, succeeded, error)] = pipeline.connection_lost("closed", closing=True)
    assert failed is token and not succeeded
    assert isinstance(error, errors.NotConnected)
    assert pipeline.pending == 0 and pipeline.pending_bytes == 0


def test_the_watch_list_is_restored_first_on_a_new_connection() -> None:
    pipeline = make_pipeline(watch=["a", "b"])
    assert pipeline.data_to_send() == b"watch a\r\nwatch b\r\nignore default\r\n"
    pipeline.receive_data(b"WATCHING 2\r\nWATCHING 3\r\nWATCHING 2\r\n")
    assert pipeline.watched_tubes == ["a", "b"]
    command(pipeline, "ignore", b"a")
    pipeline.data_to_send()
    pipeline.receive_data(b"WATCHING 1\r\n")
    pipeline.connection_lost("lost")
    waiting = command(pipeline, "reserve")
    pipeline.connection_made()
    assert pipeline.data_to_send() == b"watch b\r\nignore default\r\nreserve\r\n"
    events = pipeline.receive_data(b"WATCHING 2\r\nWATCHING 1\r\n" + reserved(1))
    assert [token for token, _ok, _value in events] == [waiting]


def test_a_batch_put_resolves_with_the_ids_it_got_and_failures_for_the_rest() -> None:
    pipeline = make_pipeline()
    token = Token("batch")
    data = b"".join(encode_put(b"%d" % n, 0, 0, 60) for n in range(3))
    pipeline.send(token, COMMANDS["put"], data, b"put (batch of 3)", batch=3)
    pipeline.data_to_send()
    assert pipeline.receive_data(b"INSERTED 1\r\n") == []
    [(answered, succeeded, results)] = pipeline.connection_lost("reset")
    assert answered is token and succeeded
    assert results[0] == 1
    assert all(isinstance(result, errors.ConnectionLost) for result in results[1:])
    assert len(results) == 3


def test_a_batch_put_reports_each_jobs_own_failure() -> None:
    pipeline = make_pipeline()
    token = Token("batch")
    data = b"".join(encode_put(b"%d" % n, 0, 0, 60) for n in range(3))
    pipeline.send(token, COMMANDS["put"], data, b"put (batch of 3)", batch=3)
    pipeline.data_to_send()
    [(answered, succeeded, results)] = pipeline.receive_data(
        b"INSERTED 1\r\nJOB_TOO_BIG\r\nINSERTED 2\r\n"
    )
    assert answered is token and succeeded
    assert results[0] == 1 and results[2] == 2
    assert isinstance(results[1], errors.JobTooBig)


# --------------------------------------------------------------------------
# Memory and timing.


def test_past_the_bound_a_command_is_refused_and_nothing_queued() -> None:
    pipeline = Pipeline(max_pending_bytes=100, address="queue:11300")
    put(pipeline, b"x" * 60)
    with pytest.raises(errors.BufferFull, match=r"max_pending_bytes=100"):
        put(pipeline, b"y" * 60)
    assert pipeline.pending == 1
    pipeline.connection_made()
    pipeline.data_to_send()
    pipeline.receive_data(b"INSERTED 1\r\n")
    assert pipeline.pending_bytes == 0
    put(pipeline, b"y" * 60)  # room again once answered


def test_allowed_silence_depends_on_the_command_at_the_head() -> None:
    pipeline = make_pipeline()
    assert pipeline.allowed_silence(2.0) is None
    command(pipeline, "reserve-with-timeout", 30, timeout=30)
    pipeline.data_to_send()
    assert pipeline.allowed_silence(2.0) == 32.0
    pipeline.receive_data(b"TIMED_OUT\r\n")
    command(pipeline, "reserve")
    pipeline.data_to_send()
    assert pipeline.allowed_silence(2.0) == float("inf")
    pipeline.receive_data(reserved(1))
    put(pipeline)
    pipeline.data_to_send()
    assert pipeline.allowed_silence(2.0) == 2.0


def test_a_batch_put_is_framed_the_same_however_its_replies_are_split() -> None:
    replies = (
        b"INSERTED 1\r\nINSERTED 2\r\nJOB_TOO_BIG\r\nINSERTED 30\r\nBURIED 31\r\n"
        b"INSERTED 32\r\nINSERTED 4\r\n"
    )
    data = b"".join(encode_put(b"%d" % n, 0, 0, 60) for n in range(6))
    for split in range(len(replies) + 1):
        pipeline = make_pipeline()
        batch, after = Token("batch"), Token("after")
        pipeline.send(batch, COMMANDS["put"], data, b"put (batch of 6)", batch=6)
        pipeline.send(after, COMMANDS["put"], encode_put(b"z", 0, 0, 60))
        pipeline.data_to_send()
        events = pipeline.receive_data(replies[:split]) + pipeline.receive_data(replies[split:])
        assert [token for token, _ok, _value in events] == [batch, after]
        results = events[0][2]
        assert [type(result).__name__ for result in results] == [
            "int",
            "int",
            "JobTooBig",
            "int",
            "Buried",
            "int",
        ]
        assert [results[i] for i in (0, 1, 3, 5)] == [1, 2, 30, 32]
        assert results[4].job_id == 31
        assert events[1][1:] == (True, 4)
        assert pipeline.pending_bytes == 0


def test_consecutive_batches_each_take_their_own_replies() -> None:
    pipeline = make_pipeline()
    first, second = Token("first"), Token("second")
    data = b"".join(encode_put(b"%d" % n, 0, 0, 60) for n in range(2))
    pipeline.send(first, COMMANDS["put"], data, b"put (batch of 2)", batch=2)
    pipeline.send(second, COMMANDS["put"], data, b"put (batch of 2)", batch=2)
    pipeline.data_to_send()
    events = pipeline.receive_data(b"INSERTED 1\r\nINSERTED 2\r\nINSERTED 3\r\nINSERTED 4\r\n")
    assert events == [(first, True, [1, 2]), (second, True, [3, 4])]
    assert pipeline.owed == 0 and pipeline.pending_bytes == 0


def test_written_commands_do_not_keep_their_bytes() -> None:
    pipeline = make_pipeline()
    put(pipeline, b"x" * 1000)
    pipeline.data_to_send()
    assert pipeline._written[0].data == b""
    assert pipeline.pending_bytes > 1000  # still counted until answered


def test_a_reserve_waits_behind_a_give_back_instead_of_deadlocking_on_it() -> None:
    # The job came for an abandoned reserve; a new reserve is issued before
    # the give-back is done. Written before the release, it would wait on the
    # server for the very job this connection holds.
    pipeline = make_pipeline()
    abandoned = command(pipeline, "reserve")
    pipeline.data_to_send()
    abandoned.abandoned = True
    assert pipeline.receive_data(reserved(7)) == []
    waiting = command(pipeline, "reserve")
    assert pipeline.data_to_send() == b"stats-job 7\r\n"  # the reserve is held
    assert pipeline.receive_data(stats_job(7, priority=3)) == []
    assert pipeline.data_to_send() == b"release 7 3 0\r\nreserve\r\n"
    events = pipeline.receive_data(b"RELEASED\r\n" + reserved(7))
    assert events == [(waiting, True, {"id": 7, "body": b"job"})]


# --------------------------------------------------------------------------
# Sequences: one write, one connection.


def _retry_sequence(pipeline: Pipeline, job: Job[Any]) -> tuple[Token, Token, Token]:
    """The worker's retry: bury, reserve-job, release, as one sequence."""
    sequence = pipeline.begin_sequence()
    buried = command(pipeline, "bury", job.id, 5, reservation=job.reservation, sequence=sequence)
    taken = command(pipeline, "reserve-job", job.id, sequence=sequence)
    released = command(
        pipeline, "release", job.id, 5, 10, reservation=job.reservation, sequence=sequence
    )
    return buried, taken, released


def test_a_sequence_goes_out_in_one_write() -> None:
    pipeline = make_pipeline()
    job = reserve_job(pipeline)
    _retry_sequence(pipeline, job)
    assert pipeline.data_to_send() == b"bury 1 5\r\nreserve-job 1\r\nrelease 1 5 10\r\n"


def test_an_unwritten_sequence_is_never_replayed_on_the_next_connection() -> None:
    pipeline = make_pipeline()
    job = reserve_job(pipeline)
    buried, taken, released = _retry_sequence(pipeline, job)
    events = {token: error for token, _ok, error in pipeline.connection_lost("reset")}
    # reserve-job by id is not about a reservation, yet it must not wait for
    # the next connection (after a no-binlog restart, id 1 is a stranger's job).
    assert type(events[taken]) is errors.NotConnected
    assert "its sequence belonged to that connection" in str(events[taken])
    assert isinstance(events[buried], errors.ReservationLost)
    assert isinstance(events[released], errors.ReservationLost)
    assert pipeline.unsent_tokens() == [] and pipeline.pending_bytes == 0
    pipeline.connection_made()
    assert pipeline.data_to_send() == b""


def test_a_written_sequence_fails_as_unknown_like_any_written_command() -> None:
    pipeline = make_pipeline()
    job = reserve_job(pipeline)
    tokens = _retry_sequence(pipeline, job)
    pipeline.data_to_send()
    events = pipeline.connection_lost("reset")
    assert [token for token, _ok, _error in events] == list(tokens)
    assert all(type(error) is errors.ConnectionLost for _token, _ok, error in events)


def test_a_refused_command_takes_back_the_earlier_ones_and_refuses_the_later_ones() -> None:
    pipeline = make_pipeline()
    job = reserve_job(pipeline)
    pipeline.connection_lost("reset")
    pipeline.connection_made()
    sequence = pipeline.begin_sequence()
    first = command(pipeline, "peek", job.id, sequence=sequence)
    with pytest.raises(errors.ReservationLost):
        command(pipeline, "bury", job.id, 5, reservation=job.reservation, sequence=sequence)
    [(token, succeeded, error)] = pipeline.break_sequence(
        sequence, errors.ReservationLost(message="lost")
    )
    assert token is first and not succeeded and isinstance(error, errors.NotConnected)
    with pytest.raises(errors.NotConnected, match="another command of its sequence"):
        command(pipeline, "reserve-job", job.id, sequence=sequence)
    assert pipeline.pending == 0 and pipeline.data_to_send() == b""


def test_a_sequence_begun_without_a_connection_sends_nothing_ever() -> None:
    pipeline = make_pipeline()
    pipeline.connection_lost("reset")
    sequence = pipeline.begin_sequence()
    with pytest.raises(errors.NotConnected, match="on the connection it began on"):
        command(pipeline, "reserve-job", 1, sequence=sequence)
    pipeline.connection_made()
    assert pipeline.data_to_send() == b""


def test_a_sequence_from_an_older_connection_is_refused_on_a_new_one() -> None:
    pipeline = make_pipeline()
    sequence = pipeline.begin_sequence()
    pipeline.connection_lost("reset")
    pipeline.connection_made()
    with pytest.raises(errors.NotConnected, match="was lost"):
        command(pipeline, "reserve-job", 1, sequence=sequence)


def test_a_command_larger_than_the_whole_bound_names_the_bound_not_the_server() -> None:
    pipeline = Pipeline(max_pending_bytes=100, address="queue:11300")
    with pytest.raises(errors.BufferFull, match=r"more than max_pending_bytes=100") as caught:
        put(pipeline, b"x" * 100)
    assert "unreachable" not in str(caught.value)
    assert pipeline.pending == 0
