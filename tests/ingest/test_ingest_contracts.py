"""PDF, DOCX, TXT and Markdown: pages, labels, headings, clause splitting, damaged files."""

import importlib.util
import io
from pathlib import Path

import docx
import pypdf
import pytest

from msa_agent.ingest import SourceError, detect_kind, parse_file

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _pdfgen():
    spec = importlib.util.spec_from_file_location("make_sample_pdf", SAMPLES / "make_sample_pdf.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


write_pdf = _pdfgen().write_pdf


def _pages(n):
    return [[f"Page body {i + 1}", f"Clause text unique-{i + 1}."] for i in range(n)]


def test_pdf_one_document_per_page_with_printed_labels(tmp_path):
    # i, ii for the front matter, then 1, 2: the viewer shows the labels, readers cite them.
    (tmp_path / "a.pdf").write_bytes(write_pdf(_pages(4), page_labels={0: "r", 2: "D"}))
    docs = parse_file(tmp_path / "a.pdf", tmp_path)
    assert [d.anchor for d in docs] == ["p. 1 (printed 'i')", "p. 2 (printed 'ii')", "p. 3 (printed '1')", "p. 4 (printed '2')"]
    assert [d.anchor_data for d in docs][2] == {"page": 3, "page_label": "1"}
    assert all(d.kind == "contract" and d.path == "a.pdf" for d in docs)
    assert "unique-3" in docs[2].text and "unique-3" not in docs[1].text


def test_pdf_plain_numbering_has_no_printed_label(tmp_path):
    (tmp_path / "a.pdf").write_bytes(write_pdf(_pages(2)))
    docs = parse_file(tmp_path / "a.pdf", tmp_path)
    assert [(d.anchor, d.anchor_data) for d in docs] == [("p. 1", {"page": 1}), ("p. 2", {"page": 2})]


def test_pdf_image_only_page_is_reported_not_stored(tmp_path):
    (tmp_path / "scan.pdf").write_bytes(write_pdf(_pages(3), image_pages={1}))
    warnings: list[str] = []
    docs = parse_file(tmp_path / "scan.pdf", tmp_path, warnings=warnings)
    assert [d.anchor_data["page"] for d in docs] == [1, 3]
    assert all(d.text.strip() for d in docs)
    assert any(w.startswith("scan.pdf: p. 2:") and "no extractable text" in w for w in warnings)


def test_pdf_with_only_images_is_an_error(tmp_path):
    (tmp_path / "scan.pdf").write_bytes(write_pdf(_pages(2), image_pages={0, 1}))
    with pytest.raises(SourceError, match="no extractable text"):
        parse_file(tmp_path / "scan.pdf", tmp_path)


def test_corrupt_pdf_is_a_source_error_naming_the_path(tmp_path):
    (tmp_path / "sub").mkdir()
    bad = tmp_path / "sub" / "broken.pdf"
    bad.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> garbage\n%%EOF")
    with pytest.raises(SourceError) as e:
        parse_file(bad, tmp_path)
    assert str(e.value).startswith("sub/broken.pdf: ")
    assert e.value.path == "sub/broken.pdf" and "\n" not in str(e.value)
    (tmp_path / "text.pdf").write_text("not a pdf at all")
    with pytest.raises(SourceError, match="text.pdf: malformed PDF"):
        parse_file(tmp_path / "text.pdf", tmp_path)


def _encrypted(user: str, owner: str) -> bytes:
    w = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(write_pdf(_pages(1)))))
    w.encrypt(user_password=user, owner_password=owner, algorithm="RC4-128")
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def test_encrypted_pdf_needing_a_password_is_refused(tmp_path):
    (tmp_path / "locked.pdf").write_bytes(_encrypted("secret", "owner"))
    with pytest.raises(SourceError, match=r"locked.pdf: encrypted PDF \(password required\)"):
        parse_file(tmp_path / "locked.pdf", tmp_path)


def test_pdf_with_owner_password_only_opens(tmp_path):
    (tmp_path / "restricted.pdf").write_bytes(_encrypted("", "owner"))
    docs = parse_file(tmp_path / "restricted.pdf", tmp_path)
    assert "unique-1" in docs[0].text


def test_long_pdf_page_splits_into_parts_that_fit(tmp_path):
    lines = [f"{i}. Clause number {i} says the Supplier shall deliver widget batch {i} on time." for i in range(1, 41)]
    (tmp_path / "long.pdf").write_bytes(write_pdf([lines[:20], lines[20:]]))
    docs = parse_file(tmp_path / "long.pdf", tmp_path, max_chars=600)
    assert all(len(d.text) <= 600 for d in docs)
    assert {d.anchor_data["page"] for d in docs} == {1, 2}
    p1 = [d for d in docs if d.anchor_data["page"] == 1]
    assert len(p1) > 1 and p1[0].anchor == f"p. 1, part 1 of {len(p1)}"
    for i in range(1, 41):
        owners = [d for d in docs if f"widget batch {i} on" in d.text]
        assert len(owners) == 1 and owners[0].anchor_data["page"] == (1 if i <= 20 else 2)


CONTRACT_TXT = """MASTER SERVICES AGREEMENT

This Agreement is made between Acme Corp (hereinafter "Acme") and Beta LLC, each a Party.

ARTICLE I DEFINITIONS

1.1 "Services" means the services described in each statement of work.
1.2 "Fees" means the amounts payable under Section 4.

ARTICLE II PAYMENT

4. Fees and invoices
4.1 Acme shall pay the Fees within thirty days of each invoice.
4.2 Late payment. Overdue amounts bear interest at two percent per month until paid.

ARTICLE III TERM AND TERMINATION

5.1 Term. This Agreement starts on the Effective Date and lasts two years.
5.2 Termination. Either Party may terminate on sixty days written notice to the other Party.
5.3 Survival. Sections 4 and 6 survive termination.

6. Governing law
This Agreement is governed by the laws of England and Wales.
"""


def _check_line_docs(docs, source: str, max_chars: int):
    lines = source.split("\n")
    covered = []
    for d in docs:
        a, b = d.anchor_data["line_start"], d.anchor_data["line_end"]
        assert d.text == "\n".join(lines[a - 1 : b]), d.anchor
        assert 0 < len(d.text) <= max_chars and d.text.strip()
        assert f"lines {a}-{b}" in d.anchor or f"line {a}" in d.anchor
        covered += range(a, b + 1)
    assert len(covered) == len(set(covered))
    assert {i + 1 for i, ln in enumerate(lines) if ln.strip()} <= set(covered)


def test_txt_contract_splits_along_articles_and_clauses(tmp_path):
    p = tmp_path / "msa.txt"
    p.write_text(CONTRACT_TXT)
    assert detect_kind(p) == "contract"
    whole = parse_file(p, tmp_path)
    n = len(CONTRACT_TXT.rstrip("\n").split("\n"))
    assert len(whole) == 1 and whole[0].anchor == f"lines 1-{n}" and whole[0].title == "MASTER SERVICES AGREEMENT"
    docs = parse_file(p, tmp_path, max_chars=300)
    assert len(docs) > 3 and all(d.kind == "contract" for d in docs)
    _check_line_docs(docs, CONTRACT_TXT, 300)
    late = next(d for d in docs if "two percent" in d.text)
    assert late.anchor == "ARTICLE II PAYMENT, lines 10-14"  # the whole article fits
    small = parse_file(p, tmp_path, max_chars=150)
    _check_line_docs(small, CONTRACT_TXT, 150)
    late = next(d for d in small if "two percent" in d.text)
    assert late.anchor == "§ 4.2 Late payment, line 14"
    assert late.title == "ARTICLE II PAYMENT > § 4 Fees and invoices > § 4.2 Late payment"
    term = next(d for d in docs if "sixty days" in d.text)
    assert term.anchor_data["heading_path"][0] == "ARTICLE III TERM AND TERMINATION"
    assert "5.1 Term." in term.text or term.anchor.startswith("§ 5.2 Termination")


def test_long_clause_falls_back_to_line_windows(tmp_path):
    body = "\n".join(f"Line {i} of the indemnity clause keeps going with more words." for i in range(60))
    src = f"Schedule B\n\n1. Indemnity\n{body}\n\n2. Notices\nNotices go to the addresses above.\n"
    p = tmp_path / "c.txt"
    p.write_text(src)
    docs = parse_file(p, tmp_path, max_chars=500)
    _check_line_docs(docs, src, 500)
    # The one-line preamble is not left alone: it travels with the start of clause 1.
    assert docs[0].text.startswith("Schedule B\n\n1. Indemnity\nLine 0 ")
    assert all(d.anchor.startswith("§ 1 Indemnity, lines") for d in docs[:-1])
    assert docs[-1].anchor == "§ 2 Notices, lines 65-66"


def test_markdown_headings_not_numbered_lists(tmp_path):
    src = "# Runbook\n\nIntro.\n\n## Restart\n\n1. Stop the service.\n2. Start it again.\n\n" + "More words in a line.\n" * 12 + "\n## Escalation\n\nCall the on-call engineer.\n"
    p = tmp_path / "RUNBOOK.md"
    p.write_text(src)
    assert detect_kind(p) == "text"
    docs = parse_file(p, tmp_path, max_chars=250)
    _check_line_docs(docs, src, 250)
    esc = next(d for d in docs if "on-call" in d.text)
    assert esc.anchor.startswith("Escalation, lines") and esc.title == "Runbook > Escalation"
    assert not any("Stop the service" in d.anchor for d in docs)


def test_short_text_is_one_document_and_empty_text_none(tmp_path):
    (tmp_path / "note.txt").write_text("\n\nJust a note.\n\n")
    (tmp_path / "empty.txt").write_text("  \n")
    [d] = parse_file(tmp_path / "note.txt", tmp_path)
    assert (d.kind, d.anchor, d.text) == ("text", "line 3", "Just a note.")
    assert parse_file(tmp_path / "empty.txt", tmp_path) == []


def test_docx_headings_paragraphs_and_tables(tmp_path):
    d = docx.Document()
    d.add_heading("Consulting Agreement", level=0)
    d.add_paragraph("This agreement is between Gamma Ltd and Delta GmbH.")
    d.add_heading("4. Termination", level=1)
    d.add_heading("4.2 Notice", level=2)
    for i in range(1, 6):
        d.add_paragraph(f"Notice paragraph {i}: either party may terminate with notice period {i * 30} days.")
    d.add_heading("5. Fees", level=1)
    t = d.add_table(rows=3, cols=2)
    for r, (a, b) in enumerate([("Item", "EUR"), ("Retainer", "12,000"), ("Day rate", "1,450")]):
        t.cell(r, 0).text, t.cell(r, 1).text = a, b
    d.save(tmp_path / "c.docx")
    assert detect_kind(tmp_path / "c.docx") == "contract"

    [whole] = parse_file(tmp_path / "c.docx", tmp_path)
    assert "Day rate | 1,450" in whole.text and whole.kind == "contract" and whole.anchor == "¶ 1-13"

    docs = parse_file(tmp_path / "c.docx", tmp_path, max_chars=250)
    assert all(0 < len(x.text) <= 250 for x in docs)
    p4 = next(x for x in docs if "notice period 120 days" in x.text)
    assert p4.anchor.startswith("4.2 Notice, ¶ ")
    assert p4.title == "Consulting Agreement > 4. Termination > 4.2 Notice"
    lo, hi = p4.anchor.split("¶ ")[1].split("-") if "-" in p4.anchor.split("¶ ")[1] else (p4.anchor.split("¶ ")[1],) * 2
    assert int(lo) <= 4 <= int(hi)
    fees = next(x for x in docs if "Retainer | 12,000" in x.text)
    assert fees.title == "Consulting Agreement > 5. Fees"
    text_all = "\n".join(x.text for x in docs)
    for i in range(1, 6):
        assert text_all.count(f"Notice paragraph {i}:") == 1


def test_malformed_docx_is_a_source_error(tmp_path):
    (tmp_path / "x.docx").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(SourceError, match="x.docx: malformed DOCX"):
        parse_file(tmp_path / "x.docx", tmp_path)


def test_rst_titles_are_headings(tmp_path):
    src = "=======\nManual\n=======\n\nIntro text.\n\nInstall\n-------\n\n" + "Run the installer.\n" * 10 + "\nUpgrade\n-------\n\n1. Back up.\n2. Upgrade.\n"
    p = tmp_path / "manual.rst"
    p.write_text(src)
    docs = parse_file(p, tmp_path, max_chars=200)
    _check_line_docs(docs, src, 200)
    up = next(d for d in docs if "Back up" in d.text)
    assert up.anchor.startswith("Upgrade, lines") and up.title == "Manual > Upgrade"
    assert docs[0].text.startswith("=======\nManual")
