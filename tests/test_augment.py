"""Training-pair augmentation (names, placeholders, case, joined sentences) and protected spans."""
import random

from hypothesis import given, settings, strategies as st

from nlp_rnn.augment import Augmentation, NameSource, augment, join, lowercase_words, recase, shared_names
from nlp_rnn.spans import PLACEHOLDER_RE, find_spans, mask, mask_pair, unmask

PAIRS = [("Tom is tall.", "Tom es alto."), ("Mary likes Boston.", "A Mary le gusta Boston."),
         ("No, thank you.", "No, gracias."), ("I paid $45.50 in 2009.", "Pagué $45.50 en 2009."),
         ("Where is the station?", "¿Dónde está la estación?"), ("Tom and Mary met in Paris.", "Tom y Mary se conocieron en París."),
         ("It is 21:30.", "Son las 21:30."), ("Open the door.", "Abre la puerta.")] * 5


def test_shared_names_are_capitalised_words_the_corpus_never_writes_in_lower_case():
    common = lowercase_words(PAIRS + [("no way", "no")] * 5)
    assert shared_names("No, Tom likes Boston.", "No, a Tom le gusta Boston.", common) == ["Boston", "Tom"]
    assert shared_names("Tom is tall.", "Tomás es alto.", common) == []


def test_names_are_replaced_the_same_on_both_sides_and_the_rest_is_kept():
    out = augment(PAIRS, Augmentation(names=1.0, seed=3))
    assert len(out) == len(PAIRS)
    for (src, tgt), (a, b) in zip(PAIRS, out):
        if "Tom" in src and "Tom" in tgt:
            assert "Tom" not in a and "Tom" not in b
            new = a.split(" is tall")[0] if src == "Tom is tall." else None
            if new:
                assert b == f"{new} es alto."
        if src == "Where is the station?":
            assert (a, b) == (src, tgt)


def test_augmentation_is_repeatable_and_depends_on_the_seed():
    aug = Augmentation(names=0.5, spans=True, case=0.2, concat=0.3, seed=7)
    assert augment(PAIRS, aug) == augment(PAIRS, aug)
    assert augment(PAIRS, aug) != augment(PAIRS, Augmentation(names=0.5, spans=True, case=0.2, concat=0.3, seed=8))


def test_shared_spans_become_one_placeholder_on_both_sides():
    src, tgt = mask_pair("I paid $45.50 in 2009.", "Pagué $45.50 en 2009.", random.Random(1))
    a, b = PLACEHOLDER_RE.findall(src), PLACEHOLDER_RE.findall(tgt)
    assert len(a) == 2 and sorted(a) == sorted(b) and "$" not in src + tgt and "2009" not in src + tgt
    assert mask_pair("It is 3:30.", "Son las tres y media.", random.Random(1)) == ("It is 3:30.", "Son las tres y media.")


def test_case_variants_change_both_sides_alike():
    rng = random.Random(0)
    seen = {recase("Where is Tom?", "¿Dónde está Tom?", rng) for _ in range(50)}
    assert ("where is tom?", "¿dónde está tom?") in seen and ("WHERE IS TOM?", "¿DÓNDE ESTÁ TOM?") in seen
    assert ("where is Tom?", "¿dónde está Tom?") in seen


def test_joined_examples_keep_every_sentence_and_never_reuse_a_placeholder():
    rng = random.Random(2)
    parts = [("I have ⟦3⟧ cats.", "Tengo ⟦3⟧ gatos."), ("Call ⟦3⟧ at ⟦5⟧.", "Llama a ⟦3⟧ a las ⟦5⟧.")]
    src, tgt = join(parts, rng)
    assert src.startswith("I have ") and " cats. Call " in src and tgt.count("⟦") == 3
    assert len(set(PLACEHOLDER_RE.findall(src))) == 3 and set(PLACEHOLDER_RE.findall(src)) == set(PLACEHOLDER_RE.findall(tgt))
    out = augment(PAIRS, Augmentation(concat=0.5, seed=1))
    assert len(out) == len(PAIRS) + round(0.5 * len(PAIRS)) and out[:len(PAIRS)] == PAIRS
    assert all(any(s in joined for s, _ in PAIRS) for joined, _ in out[len(PAIRS):])


def test_names_come_from_many_languages():
    rng, names = random.Random(0), NameSource(1)
    drawn = [names.draw(rng) for _ in range(300)]
    assert len(set(drawn)) > 200 and any(not n.isascii() for n in drawn) and any(" " in n for n in drawn)
    assert not any(n.isupper() and len(n) > 3 for n in drawn)


def test_protected_spans_of_every_kind():
    text = ("Pay $45.50 or 20 € by 15/03/2024 at 21:30 (15% off, 12,000 units, 3,5 kg) to ana@mail.example.org, "
            "@ana_l #deal, code AB-1234-XZ, call +34 612 345 678, see https://www.example.com/docs?page=2. "
            "Open C:\\Users\\ana\\report.docx, ~/notes.txt or /etc/hosts; run `pip install foo`.")
    kinds = {sp.kind: sp.text for sp in find_spans(text)}
    assert kinds["money"] in ("$45.50", "20 €") and kinds["url"] == "https://www.example.com/docs?page=2"
    for want in ("$45.50", "20 €", "15/03/2024", "21:30", "15%", "12,000", "3,5", "ana@mail.example.org", "@ana_l",
                 "#deal", "AB-1234-XZ", "+34 612 345 678", "C:\\Users\\ana\\report.docx", "~/notes.txt",
                 "/etc/hosts", "`pip install foo`"):
        assert any(sp.text == want for sp in find_spans(text)), want


def test_unmask_restores_spans_drops_invented_placeholders_and_appends_lost_ones():
    m = mask("I paid $45.50 at https://x.org/a?b=2.")
    assert m.text == "I paid ⟦1⟧ at ⟦2⟧."
    assert unmask("Pagué ⟦1⟧ en ⟦2⟧.", m).text == "Pagué $45.50 en https://x.org/a?b=2."
    lost = unmask("Pagué ⟦2⟧ ⟦9⟧.", m)
    assert lost.text == "Pagué https://x.org/a?b=2. $45.50" and lost.missing == ["$45.50"]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab 12.,:$%@#/-`⟦⟧\n")), max_size=60))
def test_masking_round_trips_any_text(text):
    m = mask(text)
    assert unmask(m.text, m).text == text
