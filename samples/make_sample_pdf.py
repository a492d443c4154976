"""Write the sample supply agreement PDF with a tiny self-contained PDF writer (no dependency).

    python samples/make_sample_pdf.py            # -> samples/corpus/contracts/supply_agreement.pdf

`write_pdf` is also what the ingest tests use to make PDFs with page labels and image-only pages.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

_LABEL_STYLES = {"D", "r", "R", "a", "A"}


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsiEncoding (cp1252), bytes beyond ASCII written as octal."""
    out = bytearray(b"(")
    for byte in text.encode("cp1252", errors="replace"):
        if byte in b"()\\":
            out += b"\\" + bytes([byte])
        elif byte < 32 or byte > 126:
            out += b"\\%03o" % byte
        else:
            out.append(byte)
    return bytes(out + b")")


def _content(lines: list[str], size: float = 10.5, leading: float = 13.5) -> bytes:
    """Lines top to bottom from the top-left margin; "# " starts a bold line."""
    ops = [b"BT", b"/F1 %g Tf" % size, b"%g TL" % leading, b"72 740 Td"]
    font = "F1"
    for line in lines:
        want, text = ("F2", line[2:]) if line.startswith("# ") else ("F1", line)
        if want != font:
            ops.append(b"/%s %g Tf" % (want.encode(), size))
            font = want
        if text:
            ops.append(_pdf_string(text) + b" Tj")
        ops.append(b"T*")
    ops.append(b"ET")
    return b"\n".join(ops) + b"\n"


def write_pdf(
    pages: list[list[str]],
    *,
    page_labels: dict[int, str] | None = None,
    image_pages: set[int] | frozenset[int] = frozenset(),
) -> bytes:
    """A PDF with one page per list of text lines (Helvetica, US Letter).

    page_labels maps a 0-based start page to a numbering style ("r" for i, ii, iii; "D" for
    1, 2, 3), as printed page numbers in a PDF viewer. Pages in image_pages carry a small gray
    image and no text, like a scanned page.
    """
    objects: list[bytes] = []  # object i + 1

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    catalog = add(b"")  # filled in last, when the page tree exists
    pages_id = add(b"")
    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    bold = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    image = None
    if image_pages:
        pixels = bytes((x * 16 + y * 8) % 256 for y in range(16) for x in range(16))
        image = add(
            b"<< /Type /XObject /Subtype /Image /Width 16 /Height 16 /ColorSpace /DeviceGray "
            b"/BitsPerComponent 8 /Length %d >>\nstream\n" % len(pixels) + pixels + b"\nendstream"
        )
    kids = []
    for i, lines in enumerate(pages):
        if i in image_pages:
            stream = b"q 468 0 0 600 72 96 cm /Im1 Do Q\n"
            resources = b"<< /XObject << /Im1 %d 0 R >> >>" % image
        else:
            stream = _content(lines)
            resources = b"<< /Font << /F1 %d 0 R /F2 %d 0 R >> >>" % (font, bold)
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream")
        kids.append(
            add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 612 792] /Resources %s /Contents %d 0 R >>"
                % (pages_id, resources, content)
            )
        )
    objects[pages_id - 1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids),
        len(kids),
    )
    cat = b"<< /Type /Catalog /Pages %d 0 R" % pages_id
    if page_labels:
        nums = []
        for start, style in sorted(page_labels.items()):
            if style not in _LABEL_STYLES:
                raise ValueError(f"page label style must be one of {sorted(_LABEL_STYLES)}")
            nums.append(b"%d << /S /%s >>" % (start, style.encode()))
        cat += b" /PageLabels << /Nums [%s] >>" % b" ".join(nums)
    objects[catalog - 1] = cat + b" >>"

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, catalog, xref)
    return bytes(out)


def wrap(paragraphs: list[str], width: int = 92) -> list[str]:
    """Paragraphs to lines; "# " headings kept whole, a blank line after each paragraph."""
    lines: list[str] = []
    for p in paragraphs:
        if p.startswith("# "):
            lines += [p]
        else:
            lines += textwrap.wrap(p, width) + [""]
    return lines


SUPPLY_AGREEMENT = [
    [
        "# SUPPLY AGREEMENT",
        "This Supply Agreement (the \"Agreement\") is entered into on 1 March 2024 (the \"Effective "
        "Date\") by and between Northwind Components Ltd., a company incorporated in England and Wales "
        "with registered number 08841207, having its office at 14 Quayside Road, Bristol BS1 6TH "
        "(hereinafter the \"Supplier\"), and Blue Harbor Robotics Inc., a Delaware corporation having "
        "its principal place of business at 2200 Harbor Point Drive, Wilmington, DE 19801 "
        "(hereinafter the \"Customer\"). The Supplier and the Customer are each a \"Party\" and "
        "together the \"Parties\".",
        "WHEREAS the Supplier manufactures precision servo actuators and controller boards, and the "
        "Customer wishes to purchase such products for its autonomous warehouse robots;",
        "NOW, THEREFORE, the Parties agree as follows:",
        "# 1. Definitions",
        "1.1 \"Products\" means the NW-340 servo actuators and the NW-CB7 controller boards listed in "
        "Schedule A, as updated by the Parties in writing from time to time.",
        "1.2 \"Order\" means a written purchase order issued by the Customer under this Agreement.",
        "1.3 \"Quarter\" means each period of three months starting on 1 January, 1 April, 1 July "
        "or 1 October.",
        "# 2. Term",
        "2.1 This Agreement commences on the Effective Date and continues for an initial term of "
        "three (3) years, ending on 28 February 2027 (the \"Initial Term\").",
        "2.2 Thereafter it renews automatically for successive periods of twelve (12) months unless "
        "either Party gives notice of non-renewal in accordance with Section 5.",
        "Page 1 of 3",
    ],
    [
        "# 3. Supply and Orders",
        "3.1 The Supplier shall deliver the Products DAP Customer's warehouse in Wilmington, Delaware "
        "(Incoterms 2020) within twenty-one (21) days of accepting an Order.",
        "3.2 The Supplier shall keep a safety stock of no fewer than 400 NW-340 actuators reserved "
        "for the Customer at all times during the term.",
        "# 4. Price and Payment",
        "4.1 The Customer shall pay a fixed fee of EUR 48,500 per quarter for the reserved capacity "
        "and the safety stock, plus the unit prices in Schedule A for each Product ordered.",
        "4.2 The Supplier invoices at the start of each Quarter. The Customer shall pay each "
        "undisputed invoice within forty-five (45) days of receipt of the invoice.",
        "4.3 Late payments bear interest at 1.5% per month from the due date until paid in full.",
        "# 5. Termination",
        "5.1 Either Party may terminate this Agreement for convenience by giving the other Party not "
        "less than ninety (90) days' prior written notice.",
        "5.2 Either Party may terminate this Agreement with immediate effect if the other Party "
        "commits a material breach and fails to remedy it within thirty (30) days of written notice.",
        "5.3 Upon termination the Customer shall pay for all Products delivered and the pro rata "
        "quarterly fee up to the date of termination.",
        "Page 2 of 3",
    ],
    [
        "# 6. Warranties",
        "6.1 The Supplier warrants that the Products will be free from defects in materials and "
        "workmanship for twenty-four (24) months from delivery.",
        "# 7. Limitation of Liability",
        "7.1 Neither Party shall be liable for indirect, incidental or consequential damages, "
        "including loss of profit, arising under this Agreement.",
        "7.2 Each Party's total aggregate liability under this Agreement shall not exceed the fees "
        "paid by the Customer in the twelve (12) months preceding the claim, and in no event more "
        "than EUR 194,000. This cap does not apply to fraud, death or personal injury.",
        "# 8. Governing Law",
        "8.1 This Agreement is governed by the laws of the State of Delaware, without regard to its "
        "conflict of laws rules. The courts of Wilmington, Delaware have exclusive jurisdiction.",
        "IN WITNESS WHEREOF, the Parties have executed this Agreement as of the Effective Date.",
        "Northwind Components Ltd., by: Eleanor Voss, Managing Director",
        "Blue Harbor Robotics Inc., by: Marcus Okafor, Chief Operating Officer",
        "Page 3 of 3",
    ],
]


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).parent / "corpus" / "contracts" / "supply_agreement.pdf"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(write_pdf([wrap(page) for page in SUPPLY_AGREEMENT]))
    print(out)


if __name__ == "__main__":
    main(sys.argv)
