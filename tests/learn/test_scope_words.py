"""The feedback's own scope words: the English shapes a scope is stated in, the words a request
must touch, and how the scope model uses them (on the hash embedder: a word matches only
itself, so the figures are exact)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from persona.learn.c3po import scope_model_for
from persona.learn.c3po_data import DatasetBuilder, DatasetConfig
from persona.learn.request_words import WordVectors, request_words
from persona.learn.scope import VERSION, WEIGHTS, WEIGHTS_WITH_EXAMPLES, ScopeModel
from persona.learn.scope_words import VAGUE, facets, scope_facets, scope_phrases
from persona.store.embed import HashEmbedder


@pytest.mark.parametrize(
    ("feedback", "phrases"),
    [
        # a trailing clause
        ("Don't use emojis when drafting emails to my boss.", ["drafting emails to my boss"]),
        ("Never use passive voice in lab reports.", ["lab reports"]),
        # a leading clause, with the asking words dropped
        ("Whenever I ask for recipes, give metric units.", ["recipes"]),
        ("For grant proposals, stress community impact.", ["grant proposals"]),
        # the subject of a rule, or a label before a colon
        ("Cover letters should never mention salary.", ["Cover letters"]),
        ("Birthday cards: keep them short.", ["Birthday cards"]),
        # the object of a verb acting on the whole answer, cut where a manner starts
        ("Please keep product descriptions under 100 words.", ["product descriptions"]),
        (
            "Format invoices for my freelance work as tables.",
            ["invoices for my freelance work"],
        ),
        # the target of "add ... to"
        ("Add a joke to toasts for my brother.", ["toasts for my brother"]),
        # quoted text is content, a manner is not a scope, and a rule may name no scope
        ("Start every reply to tickets with 'Hi, in short'.", ["every reply to tickets"]),
        ("Haiku you write for me should be in all lowercase.", ["Haiku you write for me"]),
        ("Be more concise.", []),
        ("Keep your answers short.", []),
        # an instruction's later verb does not make what precedes it a subject
        ("Keep answers short so the reader gets the point.", []),
    ],
)
def test_scope_phrases_read_the_common_shapes(feedback: str, phrases: list[str]) -> None:
    assert scope_phrases(feedback) == phrases


def test_facets_are_the_content_words() -> None:
    assert facets("drafting emails to my boss") == ["emails", "boss"]
    assert facets("my kids' party for my daughter's class") == [
        "kids",
        "party",
        "daughter",
        "class",
    ]
    assert facets("the ones I ask you for") == ["ones"]
    # a feedback naming no scope falls back to its own words; an LLM's phrase comes first
    assert scope_facets("Be more concise.") == ["concise"]
    assert scope_facets("Be more concise.", ["status reports"]) == ["status", "reports"]
    assert scope_facets("No emojis in emails to my boss.", ["ignored"]) == ["emails", "boss"]


def test_request_words_are_content_words_once_and_bounded() -> None:
    assert request_words("Email my team lead today, my lead's idea") == [
        "email",
        "team",
        "lead",
        "today",
        "idea",
    ]
    assert len(request_words(" ".join(f"word{i}" for i in range(500)))) == 64
    assert request_words("") == [] and request_words("to my the") == []


def _model(feedback: str) -> ScopeModel:
    data, _ = DatasetBuilder(None, DatasetConfig(generate=False)).build(feedback)
    return scope_model_for(data, HashEmbedder())


def test_a_request_must_touch_every_scope_word() -> None:
    model = _model("Don't use emojis when drafting emails to my boss.")
    assert model.facets == ["emails", "boss"]
    words = WordVectors(HashEmbedder())

    def match(text: str) -> float:
        return model.facet_match(words.embed(request_words(text)))

    assert match("Draft emails to my boss about Friday") == pytest.approx(1.0, abs=1e-3)
    assert match("Text my boss that I am late") == pytest.approx(0.5, abs=0.05)
    assert match("Write emails to my sister") == pytest.approx(0.5, abs=0.05)
    assert match("What is the capital of Peru") < 0.3
    assert model.facet_match(None) == 0.0  # no request words: the feature is off
    q = HashEmbedder().embed(["Text my boss that I am late"])[0]
    decision = model.decide(q, words.embed(request_words("Text my boss that I am late")))
    assert "scope words emails, boss matched 0.5" in decision.reason


def test_stored_scope_models_round_trip_and_old_ones_are_refused() -> None:
    model = _model("Keep tweets for my bakery under 40 words.")
    data = model.to_json()
    assert data["version"] == VERSION and data["facets"] == model.facets
    again = ScopeModel.from_json(data)
    q = HashEmbedder().embed(["a tweet about croissants"])[0]
    words = HashEmbedder().embed(request_words("a tweet about croissants"))
    assert again.probability(q, words) == pytest.approx(model.probability(q, words), abs=1e-3)
    with pytest.raises(ValueError, match="version 2"):
        ScopeModel.from_json({**data, "version": 2})


def test_a_scope_with_example_requests_has_its_own_combiner() -> None:
    """A scope learned from the feedback's words alone and one with example requests (an
    LLM's or the user's) weigh the same features with different shipped combiners."""
    bare = _model("Keep tweets for my bakery under 40 words.")
    assert not bare.positives and bare.combiner() == WEIGHTS
    data, _ = DatasetBuilder(None, DatasetConfig(generate=False)).build(
        "Keep tweets for my bakery under 40 words."
    )
    data["user_in_scope"] = ["A tweet about our new sourdough loaf"]
    shown = scope_model_for(data, HashEmbedder())
    assert shown.positives and shown.combiner() == WEIGHTS_WITH_EXAMPLES
    q = HashEmbedder().embed(["a tweet about croissants"])[0]
    words = HashEmbedder().embed(request_words("a tweet about croissants"))
    x = np.r_[shown.features(q, words), 1.0]
    expected = 1 / (1 + np.exp(-x @ np.asarray(WEIGHTS_WITH_EXAMPLES)))
    assert shown.probability(q, words) == pytest.approx(expected, abs=1e-9)
    shown.weights = WEIGHTS  # an explicit combiner wins
    assert shown.probability(q, words) != pytest.approx(expected, abs=1e-6)


def test_word_vectors_cache_is_bounded_and_thread_safe() -> None:
    calls: list[int] = []

    class Counting(HashEmbedder):
        def embed(self, texts: list[str]) -> np.ndarray:
            calls.append(len(texts))
            return super().embed(texts)

    words = WordVectors(Counting(), capacity=50)
    first = words.embed(["email", "boss", "email"])
    assert calls == [2] and np.allclose(first[0], first[2])
    words.embed(["boss", "email"])
    assert calls == [2]  # both cached
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(40):
                got = words.embed([f"w{k}-{i}", "email"])
                assert got.shape == (2, HashEmbedder().dim)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(words._vecs) <= 50
    assert words.embed([]).shape == (0, HashEmbedder().dim)


#: Feedbacks in the shapes people use, written after the first extractor, with the scope words
#: a request must touch; the extractor was then extended to read them (the development set of
#: :mod:`persona.learn.scope_words`; held-out shapes are measured in the README).
SHAPES = [
    ("I'd like my lab notes kept brief.", ["lab", "notes"]),
    ("I want my cooking questions answered in grams.", ["cooking"]),
    ("Could you keep customer apologies under 80 words?", ["customer", "apologies"]),
    ("Can you always sign off church newsletters with 'Blessings'?", ["church", "newsletters"]),
    (
        "Would you write podcast show notes as bullet points from now on?",
        ["podcast", "show", "notes"],
    ),
    (
        "Thank-you notes to my grandparents shouldn't mention money.",
        ["thank-you", "notes", "grandparents"],
    ),
    ("Slide decks for investors mustn't exceed ten slides.", ["slide", "decks", "investors"]),
    ("Toasts at family dinners need a short joke.", ["toasts", "family", "dinners"]),
    ("When I'm texting my landlord, stay formal.", ["texting", "landlord"]),
    ("If it's a limerick, make it rhyme AABBA.", ["limerick"]),
    ("Whenever the question is about tax forms, cite the form number.", ["tax", "forms"]),
    ("Put YAML config snippets in code fences.", ["yaml", "config", "snippets"]),
    ("Always present train timetables as a table.", ["train", "timetables"]),
    ("Stop rhyming in my song lyrics.", ["song", "lyrics"]),
    ("No semicolons in marketing emails.", ["marketing", "emails"]),
    (
        "Less jargon when you explain statistics to my students.",
        ["statistics", "students"],  # explaining is vague: a question never says it
    ),
    ("Emails to vendors get a formal greeting.", ["emails", "vendors"]),
    ("Sermon drafts: under 1,500 words.", ["sermon"]),
    (
        "In any essay for my philosophy seminar, define terms first.",
        ["essay", "philosophy", "seminar"],
    ),
    ("Keep it casual in texts to my roommate.", ["texts", "roommate"]),
    # what the user does with it names no scope (as "a paper I paste", "descriptions we post")
    ("Use the Oxford comma in everything I publish on my blog.", ["blog"]),
    (
        "Answer questions about my Kubernetes cluster with kubectl examples.",
        ["kubernetes", "cluster"],
    ),
    # "ideas" is a vague head: a request for one rarely says it ("what should I cook?")
    ("Don't suggest meat in dinner ideas for my sister.", ["dinner", "sister"]),
    (
        "Dinner ideas for my vegetarian sister must not include meat.",
        ["dinner", "vegetarian", "sister"],
    ),
    ("Eulogies should feel personal.", ["eulogies"]),
    ("My blog posts about hiking need a packing list at the end.", ["blog", "posts", "hiking"]),
    ("I prefer bullet points for sprint retrospectives.", ["sprint", "retrospectives"]),
    (
        "I prefer that captions for my travel photos stay under 15 words.",
        ["captions", "travel", "photos"],
    ),
    ("For anything involving dates, use ISO format.", ["dates"]),
    ("Answers about tax law should include a disclaimer.", ["tax", "law"]),
    ("When replying to angry customers, apologize once.", ["replying", "angry", "customers"]),
    ("Title every chapter summary with the chapter number.", ["chapter", "summary"]),
    ("Translate restaurant menus for me into plain English.", ["restaurant", "menus"]),
    ("Include a weather note in hiking plans.", ["hiking", "plans"]),
    ("Mention allergens in every recipe you send my daycare.", ["recipe", "daycare"]),
    (
        "Speeches for the school board ought to stay under five minutes.",
        ["speeches", "school", "board"],
    ),
    ("Do not use first names in letters to the council.", ["letters", "council"]),
    ("Avoid cliches whenever you write anniversary invitations.", ["anniversary", "invitations"]),
    ("While we're brainstorming startup names, go wild.", ["brainstorming", "startup", "names"]),
    (
        "During design critiques for the junior designers, point out one strength.",
        ["design", "critiques", "junior", "designers"],
    ),
    ("Reports to the board: no acronyms.", ["reports", "board"]),
    ("Explain chemistry to me like I'm twelve.", ["chemistry"]),
    ("Be blunt.", []),
    ("Shorter answers, please.", []),
    ("Use a warmer tone.", []),
    ("Stop using so many adverbs.", []),
    ("Always add alt text to images in my newsletter.", ["images", "newsletter"]),
    ("Give estimates in hours for my freelance quotes.", ["freelance", "quotes"]),
    ("Write Slack updates for my team without headers.", ["slack", "updates", "team"]),
    ("Greet my clients by name in every invoice email.", ["invoice", "email"]),
    ("Spreadsheet formulas you give me should work in Google Sheets.", ["spreadsheet", "formulas"]),
    (
        "Keep session recaps for my tabletop group spoiler-free.",
        ["session", "recaps", "tabletop", "group"],
    ),
    ("Make my reading logs more compact.", ["reading", "logs"]),
    ("Our church bulletin should list events by date.", ["church", "bulletin"]),
    ("For the kids' homework help, don't give away answers.", ["kids", "homework"]),
    ("Replies to recruiters should decline politely.", ["replies", "recruiters"]),
    ("I'd rather you skip the small talk in messages to my landlord.", ["messages", "landlord"]),
    ("Please never use headings in my diary entries.", ["diary", "entries"]),
    ("Lists of book recommendations should include the author.", ["book", "recommendations"]),
    ("Use SI units for anything physics-related.", ["physics-related"]),
    (
        "It would help if my French vocabulary drills came with example sentences.",
        ["french", "vocabulary", "drills"],
    ),
    ("I don't want emojis in anything for my accountant.", ["accountant"]),
    ("Karaoke song picks for my dad should be from the 70s.", ["karaoke", "song", "picks", "dad"]),
    ("When we talk about my garden, assume a cold climate.", ["garden"]),
    (
        "Regarding my car maintenance questions, mention the mileage interval.",
        ["car", "maintenance"],
    ),
    # development feedbacks written by a helper (second batch): question words, "D&D", a manner
    # noun phrase or a preposition after the verb, a wish with a comma, "when to", a lead
    ("Whenever I ask how to do something in Excel, give me numbered steps.", ["excel"]),
    ("Start every recap of our D&D campaign with 'Previously on'.", ["recap", "d&d", "campaign"]),
    (
        "Keep a firm but polite tone when you write complaint letters to companies for me.",
        ["complaint", "letters", "companies"],
    ),
    ("End with a question for me when you analyze my chess games.", ["chess", "games"]),
    (
        "I'd like my museum tour scripts kept conversational, like I'm chatting with visitors "
        "rather than reading a wall label.",
        ["museum", "tour", "scripts"],
    ),
    (
        "When I ask about my kids' symptoms, stay calm rather than alarmist, and tell me clearly "
        "when to call the doctor.",
        ["kids", "symptoms"],
    ),
    (
        "For questions about my car, tell me up front whether it's a DIY job or one for a "
        "mechanic.",
        ["car"],
    ),
    ("When explaining statistics, three sentences max.", ["statistics"]),
    ("Keep emails in a warm tone.", ["emails"]),
    ("Keep the tone of my emails to clients warm.", ["emails", "clients"]),
    ("Make the style of my blog posts more casual.", ["blog", "posts"]),
    ("Keep instructions for my grandmother friendly and simple.", ["instructions", "grandmother"]),
    # session 10: asides about the user, appositions, abbreviations, asked-for verbs
    ("Texts to my landlord, Mr. Patel, should stay formal.", ["texts", "landlord"]),
    (
        "As a hospice nurse, I want my shift handover notes to lead with pain scores.",
        ["shift", "handover", "notes"],
    ),
    (
        "I sew by hand, so quilting patterns should give measurements in inches.",
        ["quilting", "patterns"],
    ),
    ("Lullabies for Theo (he's two) need to stay very short.", ["lullabies", "theo"]),
    (
        "When I ask you to tidy my monthly budget, keep the categories I already use.",
        ["monthly", "budget"],
    ),
    ("Please turn my lecture recordings into outlines with timestamps.", ["lecture", "recordings"]),
    ("Two paragraphs max for anything going in the church bulletin.", ["church", "bulletin"]),
    ("Start every summary of a contract I paste with the parties' names.", ["summary", "contract"]),
    ("Dog training tips? keep them short", ["dog", "training"]),  # "tips" is a vague head
]


def _scope_words(feedback: str) -> list[str]:
    """The words of the feedback's own scope phrases (no fallback to its other words)."""
    return sorted({w for p in scope_phrases(feedback) for w in facets(p)})


@pytest.mark.parametrize(("feedback", "words"), SHAPES)
def test_scope_words_of_many_shapes(feedback: str, words: list[str]) -> None:
    assert _scope_words(feedback) == sorted(words)


#: Feedbacks written by someone who never saw the extractor, with the scope words they meant,
#: measured once after the shapes above were read (51 of 60 exact; precision 0.93, recall 0.97
#: of the words, against 36 of 60, 0.81 and 0.80 before). The nine misses were read later
#: (session 8; the "toasts" label corrected), so this list is now development data too.
MISSED = pytest.mark.xfail(strict=True, reason="a held-out shape the extractor does not read yet")
HELD_OUT = [
    (
        "When I ask for slide decks for investors, keep each slide to three bullets.",
        ["slide", "decks", "investors"],
    ),
    ("For grocery lists, group items by aisle.", ["grocery", "lists"]),
    (
        "If it's a message to my landlord, stay formal and cite the lease clause.",
        ["message", "landlord"],
    ),
    ("Keep apology messages to customers under 100 words.", ["apology", "messages", "customers"]),
    ("Be more concise.", []),
    ("Use a warmer tone.", []),
    ("In Rust snippets, use the ? operator instead of unwrap().", ["rust", "snippets"]),
    ("Instagram captions: no more than two hashtags.", ["instagram", "captions"]),
    (
        "I'd like my weekly budget summaries to round everything to the nearest dollar.",
        ["weekly", "budget", "summaries"],
    ),
    (
        "I prefer that notes to my daughter's teacher stay short and polite.",
        ["notes", "daughter", "teacher"],
    ),
    (
        "Could you stop using exclamation points in messages to the HOA board?",
        ["messages", "hoa", "board"],
    ),
    (
        "I don't want any jargon in explanations for my grandmother.",
        ["explanations", "grandmother"],
    ),
    ("Don't pad the answer. Get to the point.", []),
    ('Start with "Hi team" when drafting Slack announcements.', ["slack", "announcements"]),
    (
        "Translate medical discharge instructions into plain Spanish.",
        ["medical", "discharge", "instructions"],
    ),
    (
        "When summarizing court opinions, lead with the holding.",
        ["summarizing", "court", "opinions"],
    ),
    ("For garden planning, assume I'm in zone 6b.", ["garden", "planning"]),
    (
        "Trip packing lists should include a section for medications.",
        ["trip", "packing", "lists"],
    ),
    (
        "Cite the statute number whenever you answer questions about California tenant law.",
        ["california", "tenant", "law"],
    ),
    ("In tabletop campaign recaps, use past tense.", ["tabletop", "campaign", "recaps"]),
    ("Please avoid metaphors.", []),
    (
        "Anything for my physical therapist should mention which days my knee hurt.",
        ["physical", "therapist"],
    ),
    (
        "When my son asks for homework help in chemistry, don't give the final answer.",
        ["son", "homework", "chemistry"],
    ),
    (
        "Keep the alt text for museum photos under 125 characters.",
        ["alt", "text", "museum", "photos"],
    ),
    (
        "Condense release notes for the mobile app into five bullets at most.",
        ["release", "notes", "mobile", "app"],
    ),
    (
        "Hey, for anything about my mortgage refinance, show the monthly payment first.",
        ["mortgage", "refinance"],
    ),
    ("Use Celsius when I ask about the weather.", ["weather"]),
    ("Podcast show notes need timestamps.", ["podcast", "show", "notes"]),
    ("Quarterly board updates must open with the cash runway.", ["quarterly", "board", "updates"]),
    (
        "Could you make the meal plans for my diabetic dad lower in carbs?",
        ["meal", "plans", "diabetic", "dad"],
    ),
    ("I'd rather you not use slang. It feels forced.", []),
    (
        "Reddit comments about politics: stay neutral and skip sarcasm.",
        ["reddit", "comments", "politics"],
    ),
    (
        "If I'm writing to the school principal, sign off with my full name.",
        ["school", "principal"],
    ),
    (
        "Thank-you cards for my coworkers shouldn't mention money.",
        ["thank-you", "cards", "coworkers"],
    ),
    ("Always explain Git merge conflicts with a diagram.", ["git", "merge", "conflicts"]),
    ("When I'm messaging my sister, match her casual style.", ["messaging", "sister"]),
    ("For eBay listings, put the condition in the first line.", ["ebay", "listings"]),
    ("Answers about my cat's diet should mention that she has kidney disease.", ["cat", "diet"]),
    ("Keep it short.", []),
    ("Don't suggest supplements when I ask about my sleep problems.", ["sleep", "problems"]),
    ("Office newsletter articles should avoid inside jokes.", ["office", "newsletter", "articles"]),
    (
        "When the topic is freelance tax deductions, include a worked example.",
        ["freelance", "tax", "deductions"],
    ),
    (
        "Avoid passive voice in lab reports for my physics class.",
        ["lab", "reports", "physics", "class"],
    ),
    (
        "Can you use British spelling for anything going to our London clients?",
        ["london", "clients"],
    ),
    ("I don't like when you add a summary at the end.", []),
    ("Stop capitalizing every word in headings.", ["headings"]),
    # the writer's words left out "toasts", the kind of request itself; the extractor keeps it
    (
        "Toasts for my parents' anniversary party should be under two minutes.",
        ["toasts", "parents", "anniversary", "party"],
    ),
    ("With Terraform configs, pin provider versions.", ["terraform", "configs"]),
    (
        "In YouTube video descriptions, put the links at the bottom.",
        ["youtube", "video", "descriptions"],
    ),
    ("For weeknight dinners, keep prep under 30 minutes.", ["weeknight", "dinners"]),
    ('Never begin patient intake forms with "Dear patient".', ["patient", "intake", "forms"]),
    (
        "That was too long. Next time, bullet the key points for standup updates.",
        ["standup", "updates"],
    ),
    ("Dating profile bios shouldn't sound like a job application.", ["dating", "profile", "bios"]),
    (
        "My landscaping business flyers need the phone number in large print.",
        ["landscaping", "business", "flyers"],
    ),
    ("Less fluff, please.", []),
    (
        "If the question is about medication dosages, tell me to check with a pharmacist.",
        ["medication", "dosages"],
    ),
    (
        "For fantasy football trades, show both teams' projected points.",
        ["fantasy", "football", "trades"],
    ),
    (
        "Could you keep Spanish practice dialogues at an A2 level?",
        ["spanish", "practice", "dialogues"],
    ),
    ("Error messages in our Go CLI should start lowercase.", ["error", "messages", "go", "cli"]),
    (
        'Sign off church volunteer emails with "Blessings, Maria".',
        ["church", "volunteer", "emails"],
    ),
]


@pytest.mark.parametrize(("feedback", "words"), HELD_OUT)
def test_scope_words_of_held_out_feedbacks(feedback: str, words: list[str]) -> None:
    assert _scope_words(feedback) == sorted(words)


def _batches() -> list[Any]:
    """Fourteen more batches by writers who never saw the extractor (``data/``), each
    measured before it was read (exact of 80: 6: 73; 7: 64; 8: 67; 9: 68; 10: 70; 11: 66;
    12: 63; 13: 53, a writer asked for sloppy chat; 14: 61; 15: 63); batches 3-15 were read
    while the extractor was extended, and batch 16 is only measured (53), kept unread."""
    data = json.loads((Path(__file__).parent / "data" / "scope_words_heldout.json").read_text())
    return [
        pytest.param(
            item["feedback"],
            item["scope"],
            id=f"{item['batch']}:{item['feedback'][:50]}",
            marks=MISSED if item["missed"] else (),
        )
        for item in data["items"]
    ]


@pytest.mark.parametrize(("feedback", "words"), _batches())
def test_scope_words_of_more_writers(feedback: str, words: list[str]) -> None:
    # the writers named vague heads too ("tax questions"); the extractor drops those where
    # another word names the scope, by design (a request rarely says "question")
    wanted = set(words) - VAGUE or set(words)
    assert set(_scope_words(feedback)) == wanted


def test_the_benchmarks_feedbacks_read_as_when_they_were_measured() -> None:
    """The scope combiner was fitted on the development feedbacks' readings and the README's
    figures measured with the test feedbacks': a new shape that changes one must be seen (run
    the benchmark again, refit for dev, then update ``data/scope_words_benchmark.json``)."""
    from persona.bench.feedback_checks import load_feedback_set

    data = json.loads((Path(__file__).parent / "data" / "scope_words_benchmark.json").read_text())
    now = {
        f"{split}:{fb['id']}": {
            "phrases": scope_phrases(fb["text"]),
            "facets": scope_facets(fb["text"]),
        }
        for split in ("dev", "test", "fresh")
        for fb in load_feedback_set(split)
    }
    changed = {
        k: (data["feedbacks"].get(k), v) for k, v in now.items() if data["feedbacks"].get(k) != v
    }
    assert not changed
