"""Client.yaml: the stats and list replies exactly as the server sent them (the CLI's --raw)."""

from __future__ import annotations

import asyncio

import pytest

from beanstalkt import Client, NotFound
from beanstalkt.testing import BeanstalkdServer
from beanstalkt.yaml import parse_list, parse_mapping


async def test_each_yaml_reply_verbatim(beanstalkd: BeanstalkdServer) -> None:
    async with Client(beanstalkd.host, beanstalkd.port, watch=["a", "b"]) as client:
        job_id = await client.put(b"x", tube="jobs")
        documents = await asyncio.gather(
            client.yaml("stats"),
            client.yaml("stats-job", job_id),
            client.yaml("stats-tube", "jobs"),
            client.yaml("list-tubes"),
            client.yaml("list-tubes-watched"),
        )
        stats, stats_job, stats_tube, tubes, watched = documents
        assert all(document.startswith(b"---\n") for document in documents)
        assert beanstalkd.process is not None
        assert parse_mapping(stats)["pid"] == beanstalkd.process.pid
        assert parse_mapping(stats_job)["id"] == job_id
        assert parse_mapping(stats_tube)["current-jobs-ready"] == 1
        assert sorted(parse_list(tubes)) == ["a", "b", "default", "jobs"]
        assert sorted(parse_list(watched)) == ["a", "b"]
        # The same bytes the parsing methods read.
        assert parse_list(tubes) == await client.list_tubes()


async def test_yaml_failures_and_bad_arguments(beanstalkd: BeanstalkdServer) -> None:
    async with Client(beanstalkd.host, beanstalkd.port) as client:
        with pytest.raises(NotFound):
            await client.yaml("stats-tube", "nothing-here")
        with pytest.raises(NotFound):
            await client.yaml("stats-job", 123456)
        with pytest.raises(ValueError, match="yaml\\(\\) takes one of list-tubes"):
            client.yaml("put")
        with pytest.raises(TypeError, match="stats takes no argument"):
            client.yaml("stats", 1)
        with pytest.raises(ValueError, match="tube name"):
            client.yaml("stats-tube", "bad name")
        with pytest.raises(TypeError, match="job id must be an int"):
            client.yaml("stats-job", "7")
        # Refused before anything was sent: the connection is still in step.
        assert await client.list_tube_used() == "default"
        assert (await client.stats())["cmd-stats-job"] == 1
