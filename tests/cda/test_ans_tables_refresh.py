"""`python -m cda.refresh_tables` regenerates mappings/ans/ from the published ConceptMaps."""

import json

from cda import correspondence
from cda.refresh_tables import TABLES, main


def published_copies(directory):
    """The committed tables dressed as the publication serves them: narrative, contacts, displays."""
    for name in TABLES:
        table = json.loads((correspondence.ANS_DIR / name).read_text(encoding="utf-8"))
        table.pop("meta")
        table["text"] = {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">...</div>"}
        table["contact"] = [{"name": "ANS"}]
        for group in table["group"]:
            for element in group["element"]:
                element["display"] = "shown by the publication only"
        (directory / name).write_text(json.dumps(table), encoding="utf-8")


def test_refreshing_from_the_publication_gives_back_the_committed_tables(tmp_path, capsys):
    source, out = tmp_path / "published", tmp_path / "out"
    source.mkdir()
    out.mkdir()
    published_copies(source)
    assert main(["--version", "1.14.0", "--from", str(source), "--out", str(out)]) == 0
    for name in TABLES:
        assert (out / name).read_text(encoding="utf-8") == (correspondence.ANS_DIR / name).read_text(encoding="utf-8")
    assert "written to" in capsys.readouterr().out


def test_a_table_that_maps_a_supplement_entry_again_says_so(tmp_path, capsys):
    source, out = tmp_path / "published", tmp_path / "out"
    source.mkdir()
    out.mkdir()
    published_copies(source)
    a11 = json.loads((source / correspondence.A11).read_text(encoding="utf-8"))
    a11["group"][0]["element"].append({"code": "1.2.250.1.213.1.1.1.59", "target": [{"code": "urn:ans:ci-sis:trod:2024", "equivalence": "equivalent"}]})
    (source / correspondence.A11).write_text(json.dumps(a11), encoding="utf-8")
    assert main(["--from", str(source), "--out", str(out)]) == 0
    assert "maps again 1.2.250.1.213.1.1.1.59" in capsys.readouterr().out


def test_a_file_that_is_not_a_published_table_is_refused(tmp_path, capsys):
    source = tmp_path / "published"
    source.mkdir()
    published_copies(source)
    (source / correspondence.X04).write_text(json.dumps({"resourceType": "ValueSet"}), encoding="utf-8")
    assert main(["--from", str(source), "--out", str(tmp_path)]) == 1
    assert "is not a versioned ConceptMap" in capsys.readouterr().err
