"""The markers the study runs (patterns compiled from the lexicon for lightly normalised text)
equal the reference definition (normalise the whole text, then match whole words), in Python
and in DuckDB SQL, on every prompt of the synthetic sample and on generated tricky prompts."""
from __future__ import annotations

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import db, label, schema

LEX = label.load_lexicon()
TERMS = [t for terms in LEX.categories.values() for t in terms]

#: Pieces that stress the folding of the normalisation into the patterns: separators of every
#: kind, the Kelvin sign and dotted capital I (which ``lower()`` or a case-insensitive flag
#: would turn into ASCII letters), accents and non-Latin script (word characters for ``\b``),
#: weights, adapter calls, and digits next to letters.
PIECES = ["", " ", "  ", ",", ", ", "_", "__", "-", "--", "(", ")", "[", "]", "{", "}", ":", "::",
          ":1.2", ": 0.8", ":-1", ":1.", "1.5", "\u212a", "\u0130", "\u0131", "\u017f", "é", "É", "ü",
          "ß", "日本", "🙂", "—", "\n", "\t", ".", "'", "\"", "/", "\\", "|", "<", ">", "<lora:a_b:0.7>",
          "<LYCO:Z:1>", "< lora : x >", "<hypernet:h:1>", "1", "2", "8", "9", "up", "girl", "girls",
          "score", "scored", "solo", "x", "k", "K", "i", "I", "s", "a", "Z"]


def spelled(term: str) -> st.SearchStrategy[str]:
    """A lexicon term as prompts write it: any case, any separator, digits glued or not."""
    def spell(draw_case: list[bool], seps: list[str]) -> str:
        chars = [c.upper() if up else c for c, up in zip(term, draw_case)]
        out = "".join(seps[i] if c == " " else c for i, c in enumerate(chars))
        return out
    n = len(term)
    return st.builds(spell, st.lists(st.booleans(), min_size=n, max_size=n),
                     st.lists(st.sampled_from([" ", "_", "-", "__", " _ ", "", ",", "\u212a"]),
                              min_size=n, max_size=n))


PROMPTS = st.lists(st.one_of(st.sampled_from(PIECES), st.sampled_from(TERMS).flatmap(spelled),
                             st.text(max_size=4)), max_size=14).map("".join)


def reference_sql(con: duckdb.DuckDBPyConnection, text: str | None) -> dict[str, bool | None]:
    """The reference markers computed in SQL: full normalisation, whole-word patterns."""
    norm = con.execute(f"SELECT {label.normalised_text_sql('?')}", [text]).fetchone()[0]
    return {c: con.execute("SELECT regexp_matches(?, ?)", [norm, label.category_regex(terms)]).fetchone()[0]
            for c, terms in LEX.categories.items()}


def light_sql(con: duckdb.DuckDBPyConnection, text: str | None) -> dict[str, bool | None]:
    """The study's markers computed in SQL: light normalisation, light patterns."""
    items = ", ".join(f"regexp_matches(_light, {db.sql_literal(p)})"
                      for p in label.light_category_patterns(LEX).values())
    row = con.execute(f"SELECT {items} FROM (SELECT {label.light_text_sql('?')} AS _light)", [text]).fetchone()
    return dict(zip(LEX.categories, row))


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(PROMPTS)
def test_light_markers_equal_the_reference_in_python_and_sql(con, text):
    reference = label.match_markers_reference(text, LEX)
    assert label.match_markers(text, LEX) == reference, text
    assert light_sql(con, text) == reference, text
    assert reference_sql(con, text) == reference, text


@pytest.mark.parametrize("text", [
    "\u212aid", "nude\u212a", "\u0130nstagram model", "celebr\u0131ty", "1girl", "1_girl", "1 - GIRL",
    "1girls", "score_8_up", "SCORE8UP", "score_8up, ", "(nude:1.3)", "nude:1.3", "nud:1.3e",
    "<lora:nude:1>", "x<lora:a:1>nude", "café", "nudé", "énude", "nude_", "_nude_", "nude\n", "-loli-",
    "lolicon", "Loli", "ahoge", "a\u0301hoge", "rating_explicit", "k pop idol", "kpop idol", "k-pop idol",
    "pre_teen", "preteen", "pre-teen", None, "", ":", "<", "\u017fex", "SEX",
])
def test_tricky_inputs_agree_with_the_reference(con, text):
    reference = label.match_markers_reference(text, LEX)
    assert label.match_markers(text, LEX) == reference
    assert light_sql(con, text) == reference


def test_light_patterns_cover_every_lexicon_category():
    patterns = label.light_category_patterns(LEX)
    assert list(patterns) == list(LEX.categories)
    for c, terms in LEX.categories.items():
        for term in terms:
            assert label.match_markers(term, LEX)[c] == bool(label.normalise_text(term)), (c, term)
            if term.isascii():  # upper() maps some non-ASCII letters to ASCII ones
                shouted = term.upper().replace(" ", "_")
                assert label.match_markers(shouted, LEX)[c] == bool(label.normalise_text(term)), (c, term)


def test_a_changed_lexicon_needs_no_hand_written_pattern():
    lexicon = label.Lexicon(version=99, categories={"made_up": ("foo bar", "2baz", "qux_9", "kay")})
    for text, hit in [("FOO-bar", True), ("foobar", False), ("2 baz", True), ("x2baz", False),
                      ("(qux:9)", False), ("(qux 9:1.1)", True), ("qux9", True),
                      ("Foo\u212a bar", True), ("\u212aay", False), ("KAY", True)]:
        assert label.match_markers(text, lexicon) == label.match_markers_reference(text, lexicon)
        assert label.match_markers(text, lexicon)["made_up"] is hit, text


def test_every_sample_prompt_labels_as_the_reference(synthetic_run):
    """The whole synthetic sample: the processed markers (SQL light path) equal the reference
    computed in SQL and in Python, row by row."""
    paths = synthetic_run.paths
    processed = paths.table("processed", "images")
    with duckdb.connect() as con:
        ref_items = ", ".join(f"regexp_matches(_norm, {db.sql_literal(label.category_regex(t))}) AS {c}"
                              for c, t in LEX.categories.items())
        reference = con.execute(
            f"SELECT image_id, {ref_items} FROM (SELECT image_id, {label.normalised_text_sql('prompt')} "
            f"AS _norm FROM {db.read_parquet_sql(paths.table('interim', 'images'))}) ORDER BY image_id"
        ).fetchall()
    table = db.read_table(processed, columns=["image_id", "prompt",
                                              *(schema.marker_column(c) for c in LEX.categories)])
    got = sorted(zip(*(table.column(i).to_pylist() for i in range(table.num_columns))), key=lambda r: r[0])
    assert len(got) == len(reference) > 10_000
    n_hits = 0
    for (image_id, prompt, *markers), (ref_id, *ref) in zip(got, reference):
        assert image_id == ref_id
        assert markers == ref, (image_id, prompt)
        assert list(label.match_markers_reference(prompt, LEX).values()) == ref
        assert list(label.match_markers(prompt, LEX).values()) == ref
        n_hits += sum(bool(m) for m in markers)
    assert n_hits > 1000  # the sample exercises the patterns
