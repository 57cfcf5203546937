"""Synthetic requests and preferences for the latency benchmark: varied, seeded, cheap.

Contexts look like the requests an assistant gets (emails, summaries, plans) so that real
embedders spread them the way they spread real traffic; preferences are short style phrases.
"""

from __future__ import annotations

import random

_TOPICS = (
    "the Q3 budget review",
    "the database migration",
    "our hiring plan",
    "the product launch",
    "a late shipment",
    "the security audit",
    "quarterly sales numbers",
    "the onboarding guide",
    "a customer complaint",
    "the conference talk",
    "the API deprecation",
    "an outage postmortem",
    "the pricing change",
    "the office move",
    "a research paper on protein folding",
    "the marketing campaign",
    "the vendor contract",
    "a bug in the billing service",
    "the design review",
    "next year's roadmap",
    "the team offsite",
    "a grant proposal",
    "the data retention policy",
    "the mobile app release",
    "a climate report",
    "the new expense rules",
    "the performance review cycle",
    "a partnership with a university",
    "the board meeting",
    "the support backlog",
    "a machine learning model in production",
    "the documentation rewrite",
    "a lease renewal",
    "the accessibility audit",
    "the holiday schedule",
    "the sustainability report",
    "a patent filing",
    "the beta feedback",
    "the cloud cost overrun",
    "the open-source release",
    "a novel's first chapter",
    "the school fundraiser",
    "a medical study on sleep",
    "the city council decision",
)
_RECIPIENTS = (
    "my boss",
    "the whole team",
    "a new client",
    "our CEO",
    "a colleague in finance",
    "the legal department",
    "an angry customer",
    "my co-founder",
    "a job candidate",
    "the engineering leads",
    "a journalist",
    "our investors",
    "a supplier",
    "my professor",
    "the support team",
    "a friend",
    "the project sponsor",
    "the design team",
)
_AUDIENCES = (
    "executives",
    "new hires",
    "engineers",
    "a non-technical reader",
    "students",
    "the sales team",
    "customers",
    "researchers",
    "a ten-year-old",
    "lawyers",
    "the board",
    "product managers",
)
_DOCS = (
    "report",
    "article",
    "meeting transcript",
    "paper abstract",
    "email thread",
    "press release",
    "blog post",
    "chapter",
    "policy document",
    "slide deck",
    "memo",
)
_DETAILS = (
    "the deadline moved to Friday",
    "costs went up twelve percent",
    "two people are leaving",
    "we need approval by Monday",
    "the numbers are still preliminary",
    "legal signed off",
    "the first test failed",
    "customers love the new feature",
    "the risk is mostly timing",
    "we are waiting on a vendor",
    "the budget is frozen",
    "the demo went well",
    "we found the root cause",
    "the scope doubled",
    "nobody owns the follow-up",
)
_TONES = ("polite", "firm", "friendly", "formal", "brief", "apologetic", "enthusiastic", "neutral")
_STYLES = (
    "bullet points",
    "a one-line TL;DR first",
    "no emojis",
    "short sentences",
    "formal tone",
    "casual tone",
    "numbered steps",
    "active voice",
    "plain words, no jargon",
    "lowercase only",
    "at most three paragraphs",
    "a question at the end",
    "British spelling",
    "bold key terms",
    "a table for numbers",
    "second person",
    "no exclamation marks",
    "a warm sign-off",
    "headings for each section",
    "concrete examples",
    "dates in ISO format",
    "a summary last",
)


class SyntheticText:
    """Varied request contexts and preference texts from a seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def context(self) -> str:
        r = self.rng
        form = r.randrange(6)
        topic, detail = r.choice(_TOPICS), r.choice(_DETAILS)
        if form == 0:
            text = f"Summarize this {r.choice(_DOCS)} about {topic} for {r.choice(_AUDIENCES)}."
        elif form == 1:
            text = (
                f"Write an email to {r.choice(_RECIPIENTS)} about {topic}; mention that {detail}."
            )
        elif form == 2:
            tone, who = r.choice(_TONES), r.choice(_RECIPIENTS)
            text = f"Draft a {tone} reply to {who} who asked about {topic}."
        elif form == 3:
            text = f"Explain {topic} to {r.choice(_AUDIENCES)}, given that {detail}."
        elif form == 4:
            text = f"Rewrite my notes on {topic} so {r.choice(_AUDIENCES)} can follow them."
        else:
            text = (
                f"Give me {r.choice(_TONES)} talking points on {topic} for {r.choice(_RECIPIENTS)}."
            )
        return f"{text} Reference {r.randrange(10_000):04d}."

    def preference(self) -> str:
        a, b = self.rng.sample(_STYLES, 2)
        return f"{a} and {b}" if self.rng.random() < 0.5 else a


# -- measurement ---------------------------------------------------------------------------------
