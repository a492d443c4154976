"""HTML: readable text only, headings as structure, tables and lists as lines, contract or text."""

import re

from msa_agent.ingest import detect_kind, parse_file
from msa_agent.ingest.html import html_lines, html_text

TERMS = """<!DOCTYPE html>
<html><head><title>Supply Terms</title>
<style>p { color: red }</style><script>var s = "<p>Agreement shall terminate</p>";</script></head>
<body>
<header><nav><a href="/">Home</a> | <a href="/about">About us</a></nav><p>Site banner</p></header>
<main><article>
<header><h1>Terms</h1><p>Updated 1 March 2024</p></header>
<p>This Agreement is made between Northwind (hereinafter the &quot;Supplier&quot;) and the Customer, each a Party.</p>
<h2>1. Definitions</h2>
<p>&ldquo;Products&rdquo; means the NW-340 actuators.</p>
<h2>4. Termination</h2>
<p>Either Party may terminate this Agreement
   on sixty days&#39; written notice.</p>
<p>Termination does not affect accrued liabilities.</p>
<h3>4.3 Effect</h3>
<ul><li>Return all Products.</li><li><p>Pay all fees.</p><ol><li>within 30 days</li><li>in EUR</li></ol></li></ul>
<h2>5. Fees</h2>
<table><thead><tr><th>Item</th><th>Fee</th></tr></thead>
<tbody><tr><td>Retainer</td><td>EUR <b>48,500</b> per quarter</td></tr><tr><td>Support</td><td></td></tr></tbody></table>
<div hidden>hidden text</div><p style="display:none">invisible text</p>
<h2>6. Governing law</h2>
<p>This Agreement shall be governed by the laws of Delaware. Each Party shall indemnify the other.</p>
<noscript>Enable JavaScript</noscript>
</article></main>
<footer><p>Copyright 2024 Northwind</p></footer>
<script>trackPage()</script>
</body></html>
"""


def test_readable_lines_without_chrome_script_or_hidden_text():
    lines, title = html_lines(TERMS)
    assert title == "Supply Terms"
    assert lines == [
        ("Terms", 1),
        ("Updated 1 March 2024", 0),
        ('This Agreement is made between Northwind (hereinafter the "Supplier") and the Customer, each a Party.', 0),
        ("1. Definitions", 2),
        ("\u201cProducts\u201d means the NW-340 actuators.", 0),
        ("4. Termination", 2),
        ("Either Party may terminate this Agreement on sixty days' written notice.", 0),
        ("Termination does not affect accrued liabilities.", 0),
        ("4.3 Effect", 3),
        ("- Return all Products.", 0),
        ("- Pay all fees.", 0),
        ("  1. within 30 days", 0),
        ("  2. in EUR", 0),
        ("5. Fees", 2),
        ("Item | Fee", 0),
        ("Retainer | EUR 48,500 per quarter", 0),
        ("Support | ", 0),
        ("6. Governing law", 2),
        ("This Agreement shall be governed by the laws of Delaware. Each Party shall indemnify the other.", 0),
    ]
    text = html_text(TERMS)
    for junk in ("Home", "Site banner", "Copyright", "trackPage", "color", "hidden text", "invisible", "JavaScript"):
        assert junk not in text


def test_contract_page_split_along_headings_with_paths_and_paragraphs(tmp_path):
    p = tmp_path / "terms.html"
    p.write_text(TERMS)
    assert detect_kind(p) == "contract"
    [whole] = parse_file(p, tmp_path)
    assert whole.kind == "contract" and whole.anchor == "¶ 1-19" and whole.title == "Terms"
    assert whole.text == html_text(TERMS)

    docs = parse_file(p, tmp_path, max_chars=200)
    assert len(docs) > 3 and all(0 < len(d.text) <= 200 for d in docs)
    assert "\n".join(d.text for d in docs) == html_text(TERMS)  # every line once, in order
    by_text = {d.text.split("\n")[0]: d for d in docs}
    term = by_text["4. Termination"]
    assert term.anchor == "Terms > 4. Termination, ¶ 1-2"
    assert term.anchor_data == {"para_start": 6, "para_end": 8, "heading": "4. Termination", "heading_path": ["Terms", "4. Termination"]}
    assert term.title == "Terms > 4. Termination"
    effect = next(d for d in docs if "Return all Products." in d.text)
    assert effect.anchor.startswith("Terms > 4. Termination > 4.3 Effect")
    fees = next(d for d in docs if "48,500" in d.text)
    assert fees.title == "Terms > 5. Fees" and "Retainer | EUR 48,500 per quarter" in fees.text.split("\n")
    for d in docs:
        assert re.search(r"¶ \d+", d.anchor) or d.anchor_data["para_start"] == d.anchor_data["para_end"]


def test_plain_page_is_text_and_cited_by_paragraph(tmp_path):
    src = "<html><title>Release notes</title><body>" + "".join(f"<p>Change number {i} fixes a bug.</p>" for i in range(1, 30))
    p = tmp_path / "notes.htm"  # unclosed body and html: still read
    p.write_text(src)
    assert detect_kind(p) == "text"
    docs = parse_file(p, tmp_path, max_chars=300)
    assert len(docs) > 1 and all(d.kind == "text" and d.title == "Release notes" for d in docs)
    assert docs[0].anchor == f"¶ 1-{docs[0].anchor_data['para_end']}"
    assert docs[-1].anchor_data["para_end"] == 29 and docs[-1].text.endswith("Change number 29 fixes a bug.")


def test_empty_and_script_only_pages_give_no_documents(tmp_path):
    (tmp_path / "a.html").write_text("<html><head><script>x()</script></head><body><nav>menu</nav></body></html>")
    assert parse_file(tmp_path / "a.html", tmp_path) == []
    (tmp_path / "b.html").write_text("<p>broken <b>markup <i>everywhere</p> &bogus; <td>cell</td> <<>> end")
    [d] = parse_file(tmp_path / "b.html", tmp_path)
    assert "broken markup everywhere" in d.text and "cell" in d.text
