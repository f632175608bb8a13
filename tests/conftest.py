"""Shared fixtures: every test that needs a server gets a real beanstalkd."""

pytest_plugins = ["beanstalkt.testing"]
