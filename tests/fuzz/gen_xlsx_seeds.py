#!/usr/bin/env python3
"""Regenerates the seed corpus of fuzz_xlsx in tests/fuzz/corpus/xlsx/ (the outputs are committed;
nothing runs this in CI): two tiny workbooks (one deflated, one stored so the fuzzer sees the XML)
and one input in fuzz_xlsx's own format (the parts' XML, NUL-separated, in its part order)."""
import os
import zipfile

NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"

ROOT_RELS = (f'<Relationships xmlns="{NS_PKG}"><Relationship Id="rId1" Type="{NS_REL}/officeDocument" '
             'Target="xl/workbook.xml"/></Relationships>')
WORKBOOK = (f'<workbook xmlns="{NS_MAIN}" xmlns:r="{NS_REL}"><workbookPr date1904="{{d}}"/><sheets>'
            '<sheet name="Data" sheetId="1" r:id="rId1"/><sheet name="Two" sheetId="2" r:id="rId2"/></sheets></workbook>')
WB_RELS = (f'<Relationships xmlns="{NS_PKG}">'
           f'<Relationship Id="rId1" Type="{NS_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
           f'<Relationship Id="rId2" Type="{NS_REL}/worksheet" Target="/xl/worksheets/sheet2.xml"/>'
           f'<Relationship Id="rId3" Type="{NS_REL}/sharedStrings" Target="sharedStrings.xml"/>'
           f'<Relationship Id="rId4" Type="{NS_REL}/styles" Target="styles.xml"/></Relationships>')
SST = (f'<sst xmlns="{NS_MAIN}" uniqueCount="3"><si><t>name</t></si>'
       '<si><r><t>ri</t></r><r><t>ch</t></r><rPh><t>x</t></rPh></si><si><t>a_x000D_b</t></si></sst>')
STYLES = (f'<styleSheet xmlns="{NS_MAIN}"><numFmts><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm"/>'
          '<numFmt numFmtId="165" formatCode="[h]:mm"/></numFmts>'
          '<cellXfs><xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/><xf numFmtId="165"/><xf numFmtId="20"/>'
          '</cellXfs></styleSheet>')
SHEET1 = (f'<worksheet xmlns="{NS_MAIN}"><sheetData>'
          '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="C1" t="inlineStr"><is><t>in_x0041_</t></is></c></row>'
          '<row r="3"><c r="A3" s="1"><v>45356</v></c><c r="B3" s="2"><v>45356.5</v></c><c r="C3" s="4"><v>0.25</v></c>'
          '<c s="3"><v>1.5</v></c><c t="b"><v>1</v></c><c t="str"><f>A1</f><v>x</v></c><c t="e"><v>#N/A</v></c></row>'
          '<row><c t="s"><v>1</v></c><c t="s"><v>2</v></c><c><f>1+1</f></c></row></sheetData></worksheet>')
SHEET2 = (f'<x:worksheet xmlns:x="{NS_MAIN}"><x:sheetData><x:row r="2"><x:c r="B2" s="1"><x:v>0</x:v></x:c>'
          '</x:row></x:sheetData></x:worksheet>')

PARTS = [("_rels/.rels", ROOT_RELS), ("xl/workbook.xml", WORKBOOK), ("xl/_rels/workbook.xml.rels", WB_RELS),
         ("xl/sharedStrings.xml", SST), ("xl/styles.xml", STYLES), ("xl/worksheets/sheet1.xml", SHEET1),
         ("xl/worksheets/sheet2.xml", SHEET2)]


# the smallest workbook: one sheet of inline strings and numbers, no shared strings, no styles
MINIMAL = [("_rels/.rels", ROOT_RELS),
           ("xl/workbook.xml", f'<workbook xmlns="{NS_MAIN}" xmlns:r="{NS_REL}"><workbookPr date1904="{{d}}"/><sheets>'
            '<sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>'),
           ("xl/_rels/workbook.xml.rels", f'<Relationships xmlns="{NS_PKG}"><Relationship Id="rId1" '
            f'Type="{NS_REL}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'),
           ("xl/worksheets/sheet1.xml", f'<worksheet xmlns="{NS_MAIN}"><sheetData><row r="1">'
            '<c r="A1" t="inlineStr"><is><t>id</t></is></c><c r="B1" t="inlineStr"><is><t>when</t></is></c></row>'
            '<row r="2"><c r="A2"><v>1</v></c><c r="B2"><v>1.25</v></c></row></sheetData></worksheet>')]


def write_zip(path, parts, method, date1904):
    # fixed timestamps: the same bytes on every run
    with zipfile.ZipFile(path, "w", method) as z:
        for name, xml in parts:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = method
            z.writestr(info, xml.replace("{d}", date1904))


out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "xlsx")
os.makedirs(out, exist_ok=True)
write_zip(os.path.join(out, "deflated.xlsx"), PARTS, zipfile.ZIP_DEFLATED, "0")
write_zip(os.path.join(out, "stored-1904.xlsx"), MINIMAL, zipfile.ZIP_STORED, "1")
with open(os.path.join(out, "parts.bin"), "wb") as f:  # no sheet2: fuzz_xlsx adds no part past the last NUL
    f.write(b"\0".join(xml.replace("{d}", "0").encode() for _, xml in PARTS[:-1]))
