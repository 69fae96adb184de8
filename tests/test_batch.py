"""Batch inference (`deepworks use RUN FOLDER --out results.parquet [--engine ray|spark]`): every input's answer in
Parquet parts, identical to a local run whichever engine made them, a bad file costing its own row, and a second
start answering only the shards that are missing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from deepworks.batch import run_batch
from deepworks.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    from sklearn.datasets import load_digits

    folder = tmp_path_factory.mktemp("batch") / "digits"
    (folder / "more").mkdir(parents=True)
    digits = load_digits()
    for i in range(50):
        pixels = (digits.images[i] * 16).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / ("more" if i % 2 else ".") / f"{i:03d}.png")
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


def table(out) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(out).to_pylist()


def assert_same_answers(answers: list[dict], direct: list[dict]) -> None:
    """Each answer for its own input, with the same classes; probabilities to float rounding (a batch job's shards
    and one direct batch sum the dense layer's products in another order)."""
    assert [a["input"] for a in answers] == [d["input"] for d in direct]
    assert [[p["class"] for p in a["predictions"]] for a in answers] == [[p["class"] for p in d["predictions"]]
                                                                          for d in direct]
    assert np.allclose([[p["probability"] for p in a["predictions"]] for a in answers],
                       [[p["probability"] for p in d["predictions"]] for d in direct], atol=1e-5)


def test_every_input_is_answered_as_use_answers_it_and_a_second_start_does_only_what_is_missing(
        use_runs, digits_folder, tmp_path, capsys):
    import deepworks as dw

    out = tmp_path / "answers.parquet"
    done = run_batch(use_runs["img"], [digits_folder], out, shard_size=16, top_k=2)
    assert (done["inputs"], done["shards"], done["answered"], done["skipped"]) == (51, 4, 4, 0)
    rows = table(out)
    files = sorted(str(p) for p in digits_folder.rglob("*.png"))
    assert [r["input"] for r in rows] == files  # every file once, in order
    broken = next(r for r in rows if r["input"].endswith("broken.png"))
    assert broken["answer"] is None and "Cannot read" in broken["error"]
    trained = dw.load(use_runs["img"])
    good = [r for r in rows if r["error"] is None]
    answers, direct = [json.loads(r["answer"]) for r in good], trained.predict([r["input"] for r in good], top_k=2)
    assert_same_answers(answers, direct)

    second = out / "part-00002.parquet"
    before = second.read_bytes()
    second.unlink()
    again = run_batch(use_runs["img"], [digits_folder], out, shard_size=16, top_k=2)
    assert (again["answered"], again["skipped"]) == (1, 3) and table(out) == rows and second.read_bytes() == before
    assert "1 to go on local" in capsys.readouterr().err

    with pytest.raises(ConfigError, match="another job \\(options {'top_k': 2} "
                                          "there, {'top_k': 1} now; shard_size 16 there, 8 now\\)"):
        run_batch(use_runs["img"], [digits_folder], out, shard_size=8, top_k=1)
    with pytest.raises(ConfigError, match="--shard-size must be a whole number from 1"):
        run_batch(use_runs["img"], [digits_folder], tmp_path / "x.parquet", shard_size=0)
    with pytest.raises(ConfigError, match="makes its own outputs from noise"):
        run_batch(use_runs["gan"], [digits_folder], tmp_path / "y.parquet")


def test_a_list_names_files_and_folders_and_each_row_holds_its_own_input_s_answer(use_runs, digits_folder, tmp_path):
    import deepworks as dw

    listed = tmp_path / "list.txt"
    listed.write_text(f"{digits_folder / '000.png'}\n\n  {digits_folder / 'more'}  \n{digits_folder / '002.png'}\n")
    run_batch(use_runs["img"], [listed], tmp_path / "listed.parquet", shard_size=7, top_k=1)
    rows = table(tmp_path / "listed.parquet")
    more = sorted(str(p) for p in (digits_folder / "more").glob("*.png"))
    assert [r["input"] for r in rows] == [str(digits_folder / "000.png"), *more, str(digits_folder / "002.png")]
    assert_same_answers([json.loads(r["answer"]) for r in rows],
                        dw.load(use_runs["img"]).predict([r["input"] for r in rows], top_k=1))
    listed.write_bytes(b"caf\xe9.png\n")
    with pytest.raises(DataError, match="is not UTF-8 text"):
        run_batch(use_runs["img"], [listed], tmp_path / "latin.parquet")


def test_a_list_of_texts_goes_through_a_text_run(use_runs, tmp_path):
    import deepworks as dw

    primes = tmp_path / "primes.txt"
    primes.write_text("the quick\nlazy dog\n")
    done = run_batch(use_runs["txt"], [primes], tmp_path / "text.parquet", length=8, seed=1)
    rows = table(tmp_path / "text.parquet")
    assert done["rows"] == 2 and [json.loads(r["answer"]) for r in rows] == dw.load(use_runs["txt"]).use(
        ["the quick", "lazy dog"], length=8, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["ray", "spark"])
def test_ray_and_spark_write_the_same_answers_as_a_local_run(engine, use_runs, digits_folder, tmp_path):
    local = run_batch(use_runs["img"], [digits_folder], tmp_path / "local.parquet", shard_size=16, progress=False)
    done = run_batch(use_runs["img"], [digits_folder], tmp_path / f"{engine}.parquet", engine=engine, workers=2,
                     shard_size=16, progress=False)
    assert done["rows"] == local["rows"] == 51
    assert table(tmp_path / f"{engine}.parquet") == table(tmp_path / "local.parquet")
