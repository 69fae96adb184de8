"""Text classification data (data/textclass.py): CSV, TSV and JSONL files, class folders, the built-ins (moods,
langid, sst2, its download from a server on 127.0.0.1), and the bad inputs a user can hand it, each refused with
what to do or skipped and said in a note."""

import csv
import gzip
import json
import shutil
import time

import numpy as np
import pytest

import deepworks.data.textclass as tc
from conftest import shared
from test_builtin_data import serve  # noqa: F401 (fixture: a mirror on 127.0.0.1, as the image downloads use)
from deepworks.data.arrays import DataWarning
from deepworks.data.textclass import MAX_TEXT_CHARS, load_texts, make_moods
from deepworks.errors import DataError

pytestmark = pytest.mark.filterwarnings("ignore::deepworks.data.arrays.DataWarning")  # the notes are checked instead


def write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode(encoding))
    return path


def table(n=6, classes=("pos", "neg"), header="text,label"):
    return header + "\n" + "".join(f"example number {i},{classes[i % len(classes)]}\n" for i in range(n))


# --- moods ------------------------------------------------------------------------------------------------------------
def test_moods_is_quick_deterministic_and_balanced():
    took = []
    for _ in range(3):
        start = time.perf_counter()
        make_moods(200)
        took.append(time.perf_counter() - start)
    assert min(took) < 0.1
    a, b, other = make_moods(200), make_moods(200), make_moods(200, seed=1)
    assert a.texts == b.texts and a.texts != other.texts
    assert a.classes == ["angry", "happy", "sad"] and a.labels.dtype == np.int64
    assert np.bincount(a.labels).tolist() == [200, 200, 200] and a.split is None and a.notes == []
    assert len(set(a.texts)) > 590 and all(t == t.strip() and t[0].isupper() for t in a.texts)
    small = load_texts("moods:50")
    assert len(small.texts) == 150 and "150" in small.description and small.classes == a.classes


def test_moods_is_learned_by_a_bag_of_words_but_not_from_one_word():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    train, test = make_moods(200, seed=0), make_moods(200, seed=1)
    words = CountVectorizer()
    x, x_test = words.fit_transform(train.texts), words.transform(test.texts)
    assert LogisticRegression(max_iter=2000).fit(x, train.labels).score(x_test, test.labels) >= 0.95
    present, present_test = (x > 0).toarray(), (x_test > 0).toarray()
    best = 0.0
    for j in range(present.shape[1]):  # the best rule "this word present -> class a, else class b"
        on = present[:, j]
        a, b = (np.bincount(train.labels[m], minlength=3).argmax() for m in (on, ~on))
        best = max(best, float((np.where(present_test[:, j], a, b) == test.labels).mean()))
    assert best < 0.6


@pytest.mark.parametrize("source", ["moods:5", "moods:x", "moods:", "moods:100001", "langid:9", "langid:99999",
                                    "sst2:10"])
def test_a_built_in_size_out_of_range_is_refused(source):
    with pytest.raises(DataError, match=r"Expected .*Received"):
        load_texts(source)


# --- files ------------------------------------------------------------------------------------------------------------
def test_a_csv_is_read_by_its_column_names(tmp_path):
    text = ('\ufeffID,Review,Sentiment\r\n1,"  Great film, truly  ",pos\r\n2,"Dull, ""slow""\nand long",neg\r\n'
            '3,Fine,pos\r\n\r\n')
    t = load_texts(str(write(tmp_path / "r.csv", text)))
    assert t.texts == ["Great film, truly", 'Dull, "slow"\nand long', "Fine"]
    assert t.classes == ["neg", "pos"] and t.labels.tolist() == [1, 0, 1] and t.split is None and t.notes == []
    assert "3 texts in 2 classes" in t.description and "'Review'" in t.description and "'Sentiment'" in t.description


def test_number_labels_are_classes_in_numeric_order(tmp_path):
    t = load_texts(str(write(tmp_path / "n.csv", table(33, [str(i) for i in range(11)]))))
    assert t.classes == [str(i) for i in range(11)]
    assert t.labels.tolist() == [i % 11 for i in range(33)]


def test_tsv_keeps_quote_marks_and_reads_gzip(tmp_path):
    body = 'sentence\tlabel\r\n"it is \'great\tpos\r\nhe said "no" twice\tneg\r\n'
    plain = load_texts(str(write(tmp_path / "a.tsv", body)))
    assert plain.texts == ['"it is \'great', 'he said "no" twice'] and plain.classes == ["neg", "pos"]
    gz = load_texts(str(write(tmp_path / "a.tsv.gz", gzip.compress(body.encode()))))
    assert gz.texts == plain.texts and gz.labels.tolist() == plain.labels.tolist()


@pytest.mark.parametrize("name", ["a.jsonl", "a.ndjson", "a.jsonl.gz"])
def test_json_lines(tmp_path, name):
    lines = [{"Text": "good", "label": 1}, {"Text": "bad", "label": 0.0, "extra": [1]}, {"Text": "meh", "label": 1.0}]
    body = "\n".join(json.dumps(o) for o in lines[:2]) + "\n\n  \n" + json.dumps(lines[2]) + "\r\n"
    data = gzip.compress(body.encode()) if name.endswith(".gz") else body
    t = load_texts(str(write(tmp_path / name, data)))
    assert t.texts == ["good", "bad", "meh"] and t.classes == ["0", "1"] and t.labels.tolist() == [1, 0, 1]


def test_columns_named_by_the_user(tmp_path):
    path = write(tmp_path / "c.csv", "a,body2,kind\n1,hello there,x\n2,bye now,y\n3,hi,x\n")
    t = load_texts(str(path), text_column="BODY2", label_column="kind")
    assert t.texts == ["hello there", "bye now", "hi"] and t.classes == ["x", "y"]
    with pytest.raises(DataError, match=r"Expected a column 'nope' \(--label-column\)\. Received the columns: 'a', "
                                        r"'body2', 'kind'"):
        load_texts(str(path), text_column="body2", label_column="nope")
    with pytest.raises(DataError, match="Expected different text and label columns"):
        load_texts(str(path), text_column="kind", label_column="kind")


def test_columns_that_cannot_be_found_are_listed_with_the_flags(tmp_path):
    path = write(tmp_path / "c.csv", "a,words,kind\n1,hello there,x\n2,bye now,y\n")
    with pytest.raises(DataError, match=r"Expected a text column .*Received the columns: 'a', 'words', 'kind'\. "
                                        r"Name them with --text-column and --label-column"):
        load_texts(str(path))


def test_two_unnamed_columns_the_longer_is_the_text(tmp_path):
    t = load_texts(str(write(tmp_path / "h.csv", "tag,words\npos,a long enough text\nneg,another long text\n")))
    assert t.texts == ["a long enough text", "another long text"] and t.classes == ["neg", "pos"]
    assert "column 2 is read as the text" in t.notes[0] and "line 1 read as the header" in t.notes[0]
    # no header: the first line's label occurs again below, so that line is an example too
    t = load_texts(str(write(tmp_path / "d.csv", "great film,pos\nawful film,neg\nnice film,pos\n")))
    assert t.texts == ["great film", "awful film", "nice film"] and "line 1 read as an example" in t.notes[0]


@pytest.mark.parametrize("text, message", [("", "is empty"), ("  \n\n", "is empty"),
                                           ("text,label\n", "has a header .* but no rows")])
def test_an_empty_file_is_refused(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        load_texts(str(write(tmp_path / "e.csv", text)))


def test_rows_without_a_text_or_a_label_are_skipped_and_named(tmp_path):
    # row i (on line i + 2): no text when i is odd, no label when i % 4 == 2; 30 bad rows, 10 kept
    body = "".join(f"{'' if i % 2 else 'ok'},{'' if i % 4 == 2 else 'x' if i % 3 else 'y'}\n" for i in range(40))
    path = write(tmp_path / "s.csv", "text,label\n" + body)
    with pytest.warns(DataWarning, match="skipped"):
        t = load_texts(str(path))
    assert len(t.texts) == 10 and len(t.notes) == 1
    assert t.notes[0].startswith(f"'{path}': 30 example(s) without a text or a label skipped: line 3 (empty text), "
                                 f"line 4 (no label), line 5 (empty text)")
    assert t.notes[0].endswith("line 15 (empty text) and 20 more.")
    with pytest.raises(DataError, match=r"Expected a text and a label in every example \(--strict is on\)\. "
                                        r"Received 30 without: line 3 \(empty text\)"):
        load_texts(str(path), strict=True)
    with pytest.raises(DataError, match="Received 2 without"):
        load_texts(str(write(tmp_path / "none.csv", "text,label\n,a\nb,\n")))


def test_one_class_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"has one class only \('pos', all 3 examples\): Expected at least 2 classes "
                                        r"in the label column 'label'"):
        load_texts(str(write(tmp_path / "o.csv", table(3, ["pos"]))))


def test_a_regression_target_is_not_taken_for_classes(tmp_path):
    scores = "text,score\n" + "".join(f"review {i},{(i * 37) % 100 / 10}\n" for i in range(200))
    with pytest.raises(DataError, match=r"the label column 'score' holds 100 distinct numbers among 200 examples .*"
                                        r"regression.*--label-column"):
        load_texts(str(write(tmp_path / "r.csv", scores)))
    with pytest.raises(DataError, match="regression"):  # few rows, as many numbers as rows
        load_texts(str(write(tmp_path / "f.csv", table(6, ["1", "2", "3", "4", "5", "6"]))))
    intents = load_texts(str(write(tmp_path / "i.csv", table(300, [str(i) for i in range(30)]))))
    assert len(intents.classes) == 30  # ids 0..29, ten examples each: classes, as in Banking77


def test_a_long_text_is_cut_with_a_note(tmp_path):
    limit = csv.field_size_limit()
    huge, long = "w " * 1_000_000, "v" * (MAX_TEXT_CHARS + 1)
    t = load_texts(str(write(tmp_path / "l.csv", f'text,label\n"{huge}",a\n{long},b\nshort,a\n')))
    assert [len(x) for x in t.texts] == [MAX_TEXT_CHARS, MAX_TEXT_CHARS, 5]
    assert "2 text(s) longer than 10,000 characters (the longest 1,999,999) were cut" in t.notes[0]
    assert csv.field_size_limit() == limit  # the csv module's process-wide limit is put back


def test_bytes_that_are_not_utf8_are_refused_with_the_line(tmp_path):
    path = write(tmp_path / "x.csv", b"text,label\nfine,a\ncaf\xe9 au lait,b\n")
    with pytest.raises(DataError, match=r"x\.csv' is not UTF-8 text: byte 0xe9 on line 3, column 4 .*Re-save the file "
                                        r"as UTF-8"):
        load_texts(str(path))


@pytest.mark.parametrize("data", [b"text,label\na,b\nc\x00d,e\n", "text,label\nab,c\n".encode("utf-16")])
def test_nul_bytes_are_refused(tmp_path, data):
    with pytest.raises(DataError, match=r"holds NUL bytes \(the first on line \d\): Expected plain UTF-8 text"):
        load_texts(str(write(tmp_path / "z.csv", data)))


@pytest.mark.parametrize("row, received", [("only one field", 1), ("a,b,c", 3)])
def test_ragged_rows_are_named(tmp_path, row, received):
    path = write(tmp_path / "g.csv", f"text,label\nfine,a\n{row}\nok,b\n")
    with pytest.raises(DataError, match=rf"g\.csv' line 3: Expected 2 fields, as the header has \('text', 'label'\)\. "
                                        rf"Received {received}:"):
        load_texts(str(path))


def test_a_quote_left_open_is_named(tmp_path):
    path = write(tmp_path / "q.csv", 'text,label\nfine,a\n"never closed,b\nmore,a\n')
    with pytest.raises(DataError, match=r"the row that starts on line 3: Expected CSV quoting.*unexpected end of data"):
        load_texts(str(path))
    with pytest.raises(DataError, match=r"line 2: Expected CSV quoting"):
        load_texts(str(write(tmp_path / "r.csv", 'text,label\n"closed" then more,a\n')))


def test_duplicate_column_names_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"Expected distinct column names\. Received 'text' and 'Text ' \(columns 1 "
                                        r"and 3\)"):
        load_texts(str(write(tmp_path / "d.csv", "text,label,Text \na,b,c\n")))
    with pytest.raises(DataError, match=r"line 2: Expected distinct keys\. Received 'text' twice"):
        load_texts(str(write(tmp_path / "d.jsonl", '{"text": "a", "label": 1}\n{"text": "a", "text": "b"}\n')))


@pytest.mark.parametrize("line, message", [("{not json", r"line 2: Expected one JSON object per line.*invalid JSON"),
                                           ('["a", 1]', r"line 2: Expected a JSON object .*Received list"),
                                           ('{"text": "a", "label": ["x", "y"]}', r"line 2: Expected one label.*"
                                                                                  r"multi-label")])
def test_bad_json_lines_are_named(tmp_path, line, message):
    with pytest.raises(DataError, match=message):
        load_texts(str(write(tmp_path / "b.jsonl", '{"text": "fine", "label": 1}\n' + line + "\n")))


def test_the_work_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(tc, "MAX_ROWS", 5)
    with pytest.raises(DataError, match=r"holds more than 5 rows: Expected at most 5"):
        load_texts(str(write(tmp_path / "m.csv", table(6))))
    with pytest.raises(DataError, match=r"holds more than 5 lines"):
        load_texts(str(write(tmp_path / "m.jsonl", '{"text": "a", "label": 1}\n' * 6)))
    monkeypatch.setattr(tc, "MAX_ROWS", 100)
    monkeypatch.setattr(tc, "MAX_FILE_BYTES", 100)
    with pytest.raises(DataError, match=rf"holds {len(table(10))} bytes: Expected at most 100 bytes"):
        load_texts(str(write(tmp_path / "b.csv", table(10))))
    with pytest.raises(DataError, match="inflates to more than"):  # a small .gz that inflates past the bound
        load_texts(str(write(tmp_path / "b.csv.gz", gzip.compress(table(10).encode()))))


def test_a_missing_path_or_an_unknown_suffix_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"No such file or folder 'nowhere\.csv'\. Expected a \.csv, \.tsv or \.jsonl"):
        load_texts("nowhere.csv")
    with pytest.raises(DataError, match=r"Expected a \.csv, \.tsv, \.jsonl or \.ndjson file .*Received a '\.xlsx'"):
        load_texts(str(write(tmp_path / "t.xlsx", "text,label\n")))


# --- folders ----------------------------------------------------------------------------------------------------------
def test_a_folder_of_class_folders(tmp_path):
    root = tmp_path / "reviews"
    write(root / "pos" / "1.txt", "  Loved it.\r\nTruly.\n")
    write(root / "pos" / "deep" / "2.TXT", "Great")
    write(root / "neg" / "1.txt", "Hated it")
    write(root / "neg" / "empty.txt", "  \n")
    write(root / "neg" / "blob.txt", b"\x89PNG\x00\x00")
    write(root / "neg" / "notes.md", "not a text")
    write(root / "neg" / ".hidden.txt", "never read")
    write(root / ".git" / "x.txt", "never read")
    write(root / "README.txt", "about")
    (root / "unused").mkdir()
    t = load_texts(str(root))
    assert t.texts == ["Hated it", "Loved it.\nTruly.", "Great"] and t.classes == ["neg", "pos"]
    assert t.labels.tolist() == [0, 1, 1] and "3 texts in 2 classes" in t.description
    said = "\n".join(t.notes)
    assert "2 example(s) without a text or a label skipped: 'neg/blob.txt' (binary: NUL bytes), 'neg/empty.txt' " \
           "(empty text)" in said
    assert "1 file(s) not .txt were skipped (such as 'neg/notes.md')" in said
    assert "1 file(s) directly in" in said and "'README.txt'" in said and "'unused' hold no .txt text" in said
    with pytest.raises(DataError, match=r"--strict is on\)\. Received 2 without: 'neg/blob.txt' \(binary"):
        load_texts(str(root), strict=True)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="has no class sub-folders"):
        load_texts(str(write(tmp_path / "flat" / "a.txt", "x").parent))
    write(tmp_path / "one" / "pos" / "a.txt", "good")
    with pytest.raises(DataError, match=r"one class only \('pos'.*in the class folders"):
        load_texts(str(tmp_path / "one"))
    write(tmp_path / "bad" / "pos" / "a.txt", "good")
    write(tmp_path / "bad" / "neg" / "b.txt", b"fine\nna\xefve\n")
    with pytest.raises(DataError, match=r"b\.txt' is not UTF-8 text: byte 0xef on line 2, column 3"):
        load_texts(str(tmp_path / "bad"))
    (tmp_path / "none" / "pos").mkdir(parents=True)
    with pytest.raises(DataError, match="has no .txt files in its class folders"):
        load_texts(str(tmp_path / "none"))


# --- sst2 and langid, from the shared data ----------------------------------------------------------------------------
SST2_COUNTS = {"train": [29780, 37569], "val": [428, 444], "test": [912, 909]}


def check_sst2(t):
    assert t.classes == ["negative", "positive"] and t.labels.dtype == np.int64
    assert {k: len(v) for k, v in t.split.items()} == {"train": 67349, "val": 872, "test": 1821}
    assert {k: np.bincount(t.labels[v]).tolist() for k, v in t.split.items()} == SST2_COUNTS
    assert t.texts[0] == "hide new secretions from the parental units" and t.labels[0] == 0
    assert not any("\r" in x for x in t.texts[:1000]) and t.notes == []


def test_sst2_from_the_shared_gzipped_files():
    t = load_texts("sst2", data_dir=str(shared("sst2").parent), download=False)
    check_sst2(t)
    assert "train 67,349 / val 872 / test 1,821" in t.description


def test_sst2_downloads_the_plain_files_and_checks_them(tmp_path, serve):
    mirror = tmp_path / "mirror" / "sst2"
    mirror.mkdir(parents=True)
    for name in ("train", "dev", "test"):
        (mirror / f"{name}.tsv").write_bytes(gzip.decompress((shared("sst2") / f"{name}.tsv.gz").read_bytes()))
    with pytest.raises(DataError, match=r"SST-2 is not in .*missing: train\.tsv, dev\.tsv, test\.tsv"):
        load_texts("sst2", data_dir=str(tmp_path / "data"), download=False)
    serve(tmp_path / "mirror")
    check_sst2(load_texts("sst2", data_dir=str(tmp_path / "data")))
    assert sorted(p.name for p in (tmp_path / "data" / "sst2").iterdir()) == ["dev.tsv", "test.tsv", "train.tsv"]
    (mirror / "dev.tsv").write_bytes(b"label\tsentence\n1\ta changed file\n")
    (tmp_path / "data" / "sst2" / "dev.tsv").unlink()
    with pytest.raises(DataError, match=r"download of .*dev\.tsv does not match its published checksum"):
        load_texts("sst2", data_dir=str(tmp_path / "data"))
    shutil.copy(mirror / "dev.tsv", tmp_path / "data" / "sst2" / "dev.tsv")  # a damaged local copy
    with pytest.raises(DataError, match=r"dev\.tsv' does not match its checksum"):
        load_texts("sst2", data_dir=str(tmp_path / "data"), download=False)


def test_langid_takes_a_different_caption_in_each_language():
    folder = shared("multi30k")
    t = load_texts("langid", data_dir=str(folder.parent), download=False)
    assert t.classes == ["de", "en", "fr"]
    counts = {k: np.bincount(t.labels[v], minlength=3).tolist() for k, v in t.split.items()}
    assert counts == {"train": [3000, 3000, 3000], "val": [338, 338, 338], "test": [333, 334, 333]}
    for k, lang in enumerate(("en", "de", "fr")):
        lines = gzip.decompress((folder / f"train.{lang}.gz").read_bytes()).decode().split("\n")
        mine = [t.texts[i] for i in t.split["train"] if t.classes[t.labels[i]] == lang]
        assert mine == [s.strip() for s in lines[k::3][:3000]]  # captions i with i % 3 == k, in order
    small = load_texts("langid:10", data_dir=str(folder.parent), download=False)
    assert {k: len(v) for k, v in small.split.items()} == {"train": 30, "val": 30, "test": 30}
    assert "train 30 / val 30 / test 30" in small.description
