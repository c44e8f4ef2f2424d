"""Fixtures shared by the functional tests."""

from tests.functional.aws_fixtures import aws  # noqa: F401 - re-exported as a fixture
