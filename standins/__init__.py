"""Local stand-in servers for Stripe, Linq and Slack, used by tests and the sandbox only."""

from standins.base import Fault, StandinServer
from standins.linkrule import contains_url
from standins.linq_api import LINQ_TOKEN, LinqStandin, is_opt_out
from standins.slack_api import SlackStandin
from standins.stripe_api import STRIPE_API_VERSION, STRIPE_LIVE_KEY, STRIPE_TEST_KEY, StripeStandin

__all__ = [
    "LINQ_TOKEN",
    "STRIPE_API_VERSION",
    "STRIPE_LIVE_KEY",
    "STRIPE_TEST_KEY",
    "Fault",
    "LinqStandin",
    "SlackStandin",
    "StandinServer",
    "StripeStandin",
    "contains_url",
    "is_opt_out",
]
