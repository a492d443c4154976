"""PDF running headers/footers and character spans; damaged, encrypted and scanned PDFs; files that
are not DOCX packages."""

import hashlib
import importlib.util
import io
import re
import zipfile
from pathlib import Path

import docx
import pypdf
import pytest

from msa_agent.ingest import SourceError, parse_file
from msa_agent.ingest.contracts import running_lines

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
_spec = importlib.util.spec_from_file_location("make_sample_pdf", SAMPLES / "make_sample_pdf.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
write_pdf = _mod.write_pdf

HEADER = "CONFIDENTIAL \u2013 Supply Agreement"


def _body(page: int, n: int = 10) -> list[str]:
    return [f"Clause {page}.{j}: the Supplier delivers lot {page * 100 + j} to the Customer." for j in range(1, n + 1)]


def _page_text(data: bytes, page: int) -> str:
    raw = pypdf.PdfReader(io.BytesIO(data)).pages[page - 1].extract_text()
    return "\n".join(ln.rstrip() for ln in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def test_running_headers_and_page_numbers_are_stripped(tmp_path):
    pages, bodies = [], {}
    for i in range(1, 7):
        head = [] if i == 1 else [HEADER, ""]  # the title page has no header
        body = bodies[i] = _body(i)
        if i == 4:
            body[5] = HEADER  # the same words inside the body stay
        pages.append(head + body + ["", f"Page {i} of 6"])
    data = write_pdf(pages, image_pages={2})  # page 3 is a scan
    (tmp_path / "a.pdf").write_bytes(data)
    warnings: list[str] = []
    docs = parse_file(tmp_path / "a.pdf", tmp_path, warnings=warnings)
    assert [d.anchor for d in docs] == ["p. 1", "p. 2", "p. 4", "p. 5", "p. 6"]
    assert any(w.startswith("a.pdf: p. 3:") and "no extractable text" in w for w in warnings)
    for d in docs:
        i = d.anchor_data["page"]
        assert not re.search(r"Page \d of 6", d.text)
        assert d.text.split("\n")[0] == _body(i)[0]
        assert d.text.count(HEADER) == (1 if i == 4 else 0)
        assert d.text == "\n".join(bodies[i])


def test_short_documents_keep_their_lines_unless_clearly_repeated():
    body = [f"Body line {j} of the letter." for j in range(9)]
    # Two pages: a page number or the very same line goes; lines alike only in digits stay.
    two = [["DRAFT", "Section 1 overview", *body, "1 / 2"], ["DRAFT", "Section 2 overview", *body[::-1], "2 / 2"]]
    drop = running_lines(two)
    assert [sorted(two[p][j] for j in d) for p, d in enumerate(drop)] == [["1 / 2", "DRAFT"], ["2 / 2", "DRAFT"]]
    two = [[*body, "Acme Corp – Page 1"], [*body[::-1], "Acme Corp – Page 2"]]
    assert running_lines(two) == [{9}, {9}]
    one = [["Page 1 of 1", *body, "Page 1 of 1"]]
    assert running_lines(one) == [set()]
    # Numbered clauses look alike at every page edge but fill the body too: not running lines.
    clauses = [[f"{p}.{j} The Supplier shall deliver batch {p}{j} on time." for j in range(12)] for p in range(5)]
    assert running_lines(clauses) == [set()] * 5
    # Pages of two lines are all edge: nothing is a header there.
    tiny = [[f"Page body {i}", f"Clause text unique-{i}."] for i in range(4)]
    assert running_lines(tiny) == [set()] * 4


def test_split_pages_carry_their_character_span(tmp_path):
    lines = [f"{i}. Clause number {i} says the Supplier shall deliver widget batch {i} on time." for i in range(1, 31)]
    long_line = "X" * 700  # longer than max_chars: cut into slices
    pages = [[HEADER, *lines[:15], "Page 1 of 3"], [HEADER, *lines[15:], "Page 2 of 3"], [HEADER, long_line, *_body(3, 4), "Page 3 of 3"]]
    data = write_pdf(pages)
    (tmp_path / "s.pdf").write_bytes(data)
    docs = parse_file(tmp_path / "s.pdf", tmp_path, max_chars=400)
    for d in docs:
        a = d.anchor_data
        assert a["parts"] > 1 and d.anchor == f"p. {a['page']}, part {a['part']} of {a['parts']}"
        text = _page_text(data, a["page"])
        assert text[a["char_start"] : a["char_end"]] == d.text, d.anchor
        assert HEADER not in d.text and "of 3" not in d.text
    assert sum(d.text.count("X") for d in docs) == 700
    spans = [(d.anchor_data["char_start"], d.anchor_data["char_end"]) for d in docs if d.anchor_data["page"] == 3]
    assert spans == sorted(spans) and all(b <= c for (_, b), (c, _) in zip(spans, spans[1:]))
    [whole] = parse_file(tmp_path / "s.pdf", tmp_path, max_chars=100_000)[:1]
    assert "char_start" not in whole.anchor_data  # an unsplit page is the page


def test_truncated_pdf_is_a_source_error_saying_so(tmp_path):
    data = write_pdf([_body(i, 30) for i in range(1, 4)])
    for frac in (0.3, 0.9):
        (tmp_path / "cut.pdf").write_bytes(data[: int(len(data) * frac)])
        with pytest.raises(SourceError, match=r"^cut.pdf: malformed PDF \(truncated\? no %%EOF at its end\): "):
            parse_file(tmp_path / "cut.pdf", tmp_path)


def _rc4(data: bytes, user: str, owner: str) -> bytes:
    w = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    w.encrypt(user_password=user, owner_password=owner, algorithm="RC4-40")
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def _aes256(base: bytes) -> bytes:
    """An AES-256 (R5) encrypted PDF whose empty user password verifies, written without pypdf
    (which needs the cryptography package for AES)."""
    salt_v, salt_k = b"A" * 8, b"B" * 8
    u = hashlib.sha256(salt_v).digest() + salt_v + salt_k
    o = hashlib.sha256(b"owner" + b"C" * 8 + u).digest() + b"C" * 8 + b"D" * 8
    enc = (
        b"<< /Filter /Standard /V 5 /R 5 /Length 256 /P -4 /O <%s> /U <%s> /OE <%s> /UE <%s> "
        b"/CF << /StdCF << /CFM /AESV3 /AuthEvent /DocOpen /Length 32 >> >> /StmF /StdCF /StrF /StdCF >>"
    ) % (o.hex().encode(), u.hex().encode(), b"00" * 32, b"00" * 32)
    body = base[: base.rindex(b"\nxref\n") + 1]
    n = int(re.search(rb"/Size (\d+)", base).group(1))
    body += b"%d 0 obj\n" % n + enc + b"\nendobj\n"
    offs = {int(m.group(1)): m.start() for m in re.finditer(rb"(?m)^(\d+) 0 obj", body)}
    xref = len(body)
    out = body + b"xref\n0 %d\n0000000000 65535 f \n" % (n + 1)
    out += b"".join(b"%010d 00000 n \n" % offs[k] for k in range(1, n + 1))
    ident = b"<00112233445566778899aabbccddeeff>"
    out += b"trailer\n<< /Size %d /Root 1 0 R /Encrypt %d 0 R /ID [%s %s] >>\nstartxref\n%d\n%%%%EOF\n" % (
        n + 1, n, ident, ident, xref,
    )  # fmt: skip
    return out


def test_encrypted_pdfs(tmp_path):
    base = write_pdf([["Secret clause text."]])
    (tmp_path / "user.pdf").write_bytes(_rc4(base, "pw", "owner"))
    with pytest.raises(SourceError, match=r"^user.pdf: encrypted PDF \(password required\)$"):
        parse_file(tmp_path / "user.pdf", tmp_path)
    (tmp_path / "owner.pdf").write_bytes(_rc4(base, "", "owner"))
    assert "Secret clause text." in parse_file(tmp_path / "owner.pdf", tmp_path)[0].text
    (tmp_path / "aes.pdf").write_bytes(_aes256(base))
    try:
        import cryptography  # noqa: F401
    except ImportError:
        with pytest.raises(SourceError, match=r"^aes.pdf: encrypted PDF, cannot decrypt: .*cryptography"):
            parse_file(tmp_path / "aes.pdf", tmp_path)
    else:  # the handmade keys do not decrypt real content; the reason must still say encrypted
        with pytest.raises(SourceError, match=r"^aes.pdf: (encrypted PDF|no extractable text|text extraction failed)"):
            parse_file(tmp_path / "aes.pdf", tmp_path)


def test_scanned_pdf_without_text(tmp_path):
    (tmp_path / "scan.pdf").write_bytes(write_pdf([["x"]] * 3, image_pages={0, 1, 2}))
    with pytest.raises(SourceError, match=r"^scan.pdf: no extractable text \(scanned or image-only PDF\? OCR it first\)$"):
        parse_file(tmp_path / "scan.pdf", tmp_path)


# --- DOCX that is not one ------------------------------------------------------------------------


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _real_docx() -> bytes:
    d = docx.Document()
    d.add_paragraph("This Agreement is governed by the laws of Delaware. " * 40)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "malformed DOCX: empty file"),
        (b"This is plain text saved with the wrong name.\n", "malformed DOCX: not a zip archive (a text file)"),
        (b"%PDF-1.4\n...", "malformed DOCX: not a zip archive (a PDF)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "not a zip archive (an OLE2 compound file: a legacy .doc, or a password-protected DOCX)"),
        (b"PK\x03\x04 not really a zip", "malformed DOCX: not a zip archive (a damaged or truncated zip archive)"),
        (_zip({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"}), "not a Word document: no word/document.xml in the zip; it is an Excel workbook (.xlsx)"),
        (_zip({"mimetype": b"application/vnd.oasis.opendocument.text", "content.xml": b"<x/>"}), "it is an OpenDocument file (.odt/.ods/.odp)"),
        (_zip({"notes.txt": b"hi", "img/a.png": b"\x89PNG", "b.csv": b"a,b", "c.txt": b"c"}), "it is a zip of 4 file(s): notes.txt, img/a.png, b.csv, …"),
        (_zip({}), "it is an empty zip archive"),
    ],
)
def test_docx_that_is_not_a_word_package(tmp_path, data, reason):
    (tmp_path / "x.docx").write_bytes(data)
    with pytest.raises(SourceError) as e:
        parse_file(tmp_path / "x.docx", tmp_path)
    assert str(e.value).startswith("x.docx: ") and reason in str(e.value), str(e.value)


def test_truncated_docx(tmp_path):
    data = _real_docx()
    (tmp_path / "ok.docx").write_bytes(data)
    assert "Delaware" in parse_file(tmp_path / "ok.docx", tmp_path)[0].text
    (tmp_path / "cut.docx").write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=r"^cut.docx: malformed DOCX: not a zip archive \(a damaged or truncated zip archive\)$"):
        parse_file(tmp_path / "cut.docx", tmp_path)
