"""Local stand-in servers for Stripe, Linq and Slack, used by tests and the sandbox only."""

from standins.linq_api import LINQ_TOKEN, LinqStandin
from standins.slack_api import SlackStandin
from standins.stripe_api import STRIPE_TEST_KEY, StripeStandin

__all__ = ["LINQ_TOKEN", "STRIPE_TEST_KEY", "LinqStandin", "SlackStandin", "StripeStandin"]
