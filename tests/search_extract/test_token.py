"""Token encodings: every search form is one literal string."""

from fhir_server.search.normalize.token import encode


def _encode(items):
    ix: dict = {}
    sk: dict = {}
    encode("t", items, ix, sk)
    return ix, sk


def test_coding_with_and_without_system():
    ix, sk = _encode([("Coding", {"system": "http://loinc.org", "code": "11502-2", "display": "Résultats"}),
                      ("Coding", {"code": "local"})])
    assert ix["t"] == ["http://loinc.org|11502-2", "*|11502-2", "http://loinc.org|*", "|local", "*|local"]
    assert ix["t:text"] == ["resultats"]
    assert sk["t"] == "11502-2"


def test_codeable_concept_text_and_displays():
    concept = {"coding": [{"system": "s", "code": "a", "display": "Alpha"}, {"system": "s", "code": "b"}],
               "text": "Texte libre"}
    ix, _ = _encode([("CodeableConcept", concept)])
    assert ix["t"] == ["s|a", "*|a", "s|*", "s|b", "*|b"]
    assert ix["t:text"] == ["alpha", "texte libre"]


def test_identifier_with_type():
    identifier = {"system": "urn:oid:1.2.250.1.213.1.4.8", "value": "277076322082910",
                  "type": {"coding": [{"system": "urn:sys", "code": "INS-NIR"}], "text": "NIR"}}
    ix, sk = _encode([("Identifier", identifier)])
    assert ix["t"] == [
        "urn:oid:1.2.250.1.213.1.4.8|277076322082910", "*|277076322082910", "urn:oid:1.2.250.1.213.1.4.8|*",
    ]
    assert ix["t:of-type"] == ["urn:sys|INS-NIR|277076322082910"]
    assert ix["t:text"] == ["nir"]
    assert sk["t"] == "277076322082910"


def test_contact_point_value_is_a_system_less_code():
    ix, _ = _encode([("ContactPoint", {"system": "email", "value": "a@example.fr", "use": "work"})])
    assert ix["t"] == ["|a@example.fr", "*|a@example.fr"]


def test_booleans_and_plain_codes():
    ix, sk = _encode([("boolean", True)])
    assert ix["t"] == ["*|true"]
    assert sk["t"] == "true"
    ix, _ = _encode([("boolean", False)])
    assert ix["t"] == ["*|false"]
    ix, _ = _encode([("code", "final"), ("uri", "urn:x")])
    assert ix["t"] == ["|final", "*|final", "|urn:x", "*|urn:x"]


def test_values_without_declared_type_are_recognised_by_shape():
    ix, _ = _encode([(None, {"coding": [{"system": "s", "code": "c"}]}),
                     (None, {"system": "phone", "value": "0601020304"}),
                     (None, {"system": "urn:ids", "value": "42"}),
                     (None, True)])
    assert ix["t"] == ["s|c", "*|c", "s|*", "|0601020304", "*|0601020304", "urn:ids|42", "*|42", "urn:ids|*",
                       "*|true"]


def test_nothing_to_index():
    ix, sk = _encode([("CodeableConcept", {"text": "   "}), ("Reference", {"reference": "Patient/1"})])
    assert ix == {} and sk == {}
