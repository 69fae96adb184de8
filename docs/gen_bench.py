"""The benchmark tables of docs/benchmarks.md, read from bench/results/*.json when the site is built.

The page's prose stays hand-written (what each benchmark runs and what its figures mean); each
`<!-- bench:NAME -->` marker in it becomes a table of NAME.json's key figures, each with the date it was measured,
and a line naming the machine. A results file that the page has no marker for is added at the end with the
figures a generic reader finds, so a new benchmark shows up without editing this file.

SPEC lists, per benchmark, the figures worth a row: (label, path), the path's parts separated by "/" (keys hold
dots: "seconds_to_0.990"), a trailing "/*" for every child of a dict; a list of numbers (one per seed) is written
comma-separated. A path missing from the file is left out, so a benchmark that changes its output never breaks the
build; it only loses the row.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results"
MARKER = re.compile(r"<!--\s*bench:([\w.-]+)\s*-->")

SPEC: dict[str, list] = {
    "image": [
        ("LeNet-5 on MNIST, deepworks samples/s (median)", "throughput/deepworks_median"),
        ("plain PyTorch loop samples/s (median)", "throughput/plain_median"),
        ("deepworks / plain loop", "throughput/ratio_vs_plain"),
        ("deepworks / plain loop, paired", "throughput/paired_ratio_vs_plain"),
        ("deepworks / plain loop in channels_last", "throughput/ratio_vs_plain_channels_last"),
        ("`deepworks train --data mnist`: seconds to 99.0 % test accuracy, 3 seeds (median)",
         "default/seconds_to_0.990", "default/median_seconds_to_0.990"),
        ("the same: test accuracy after its one epoch", "default/test_accuracy_after_1st_epoch"),
        ("pytorch/examples' MNIST script given the same time: test accuracy",
         "default/pytorch_examples_same_time/test_accuracy"),
        ("the previous default (LeNet-5, 3 epochs): seconds to 99.0 %", "default/before/seconds_to_0.990"),
        ("random forest on MNIST's raw pixels: accuracy", "forest/accuracy"),
        ("Fashion-MNIST, ResNet-8 in 5 minutes: test accuracy", "fashion/cnn_5min/final_test_accuracy"),
        ("the same: epochs / seconds of training", "fashion/cnn_5min/epochs", "fashion/cnn_5min/total_train_seconds"),
        ("Fashion-MNIST, MLP in 60 s: test accuracy", "fashion/mlp_60s/final_test_accuracy"),
        ("peak memory training one epoch, deepworks / plain (MB)", "memory/deepworks_peak_rss_training_mb",
         "memory/plain_peak_rss_training_mb"),
    ],
    "text": [
        ("char LSTM, deepworks / plain loop characters/s", "throughput/ratio"),
        ("the same, paired", "throughput/paired_ratio"),
        ("5 minutes of training: validation loss (nats/char), deepworks / plain", "budget/deepworks/val_loss",
         "budget/plain/val_loss"),
        ("the same: bits per character", "budget/deepworks/val_bpc"),
        ("sampling at batch 1, characters/s, deepworks / plain", "sampling/deepworks_chars_per_s",
         "sampling/plain_chars_per_s"),
    ],
    "translate": [
        ("GRU + attention: test BLEU, greedy / beam 5", "gru/deepworks/test/beam1/bleu", "gru/deepworks/test/beam5/bleu"),
        ("GRU: chrF, greedy", "gru/deepworks/test/beam1/chrf"),
        ("GRU: epochs / seconds", "gru/deepworks/epochs", "gru/deepworks/train_seconds"),
        ("plain loop, same model and time: test BLEU", "gru/plain/test/bleu"),
        ("training pairs/s, deepworks / plain", "gru/deepworks/pairs_per_s", "gru/plain/pairs_per_s"),
        ("throughput ratio", "gru/throughput_ratio"),
        ("Transformer: test BLEU, greedy / beam 5", "transformer/test/beam1/bleu", "transformer/test/beam5/bleu"),
        ("Transformer: epochs / seconds", "transformer/epochs", "transformer/train_seconds"),
    ],
    "gan": [
        ("training images/s, deepworks / reference (ratio)", "throughput/ratio"),
        ("the same, paired", "throughput/paired_ratio"),
        ("FID, deepworks / reference", "quality/deepworks/fid", "quality/reference/fid"),
        ("FID ratio (target at most 0.5)", "quality/fid_ratio"),
        ("epochs in the budget, deepworks / reference", "quality/deepworks/epochs", "quality/reference/epochs"),
        ("Fashion-MNIST: FID, deepworks / reference", "fashion/deepworks/fid", "fashion/reference/fid"),
        ("Fashion-MNIST: FID ratio (target at most 0.5)", "fashion/fid_ratio"),
        ("conditional on the digits, 3 seeds: of the class asked for (target 0.95), now / before",
         "conditional/range/default/class_accuracy", "conditional/range/before/class_accuracy"),
        ("the same: diversity within the least varied class (target 0.6), now / before",
         "conditional/range/default/class_diversity_min", "conditional/range/before/class_diversity_min"),
        ("the same: FID, now / before (real images: the floor)", "conditional/range/default/fid",
         "conditional/range/before/fid"),
    ],
    "robust": [
        ("clean accuracy, deepworks / plain loop", "training/deepworks/clean_accuracy",
         "training/plain_pytorch/clean_accuracy"),
        ("PGD-40 accuracy at eps 0.3, deepworks / plain loop", "training/deepworks/pgd40_accuracy",
         "training/plain_pytorch/pgd40_accuracy"),
        ("FGSM accuracy, deepworks / plain loop", "training/deepworks/fgsm_accuracy",
         "training/plain_pytorch/fgsm_accuracy"),
        ("throughput ratio, one run after the other", "training/throughput_ratio"),
        ("throughput ratio, alternated in one process / paired", "throughput/ratio", "throughput/paired_ratio"),
    ],
    "cifar": [
        ("test accuracy, deepworks defaults / plain airbench94", "deepworks defaults/test_accuracy",
         "plain PyTorch airbench94/test_accuracy"),
        ("the whole command, seconds: deepworks / plain airbench94", "deepworks defaults/command_seconds",
         "plain PyTorch airbench94/command_seconds"),
        ("training seconds: deepworks / plain airbench94", "deepworks defaults/train_seconds",
         "plain PyTorch airbench94/train_seconds"),
        ("goal met (90 % in 30 minutes)", "goal/met"),
    ],
    "photos": [
        ("defaults now: test accuracy / on other photos", "deepworks defaults now/test_accuracy",
         "deepworks defaults now/other_photos_accuracy"),
        ("defaults before: test accuracy / on other photos", "deepworks defaults before/test_accuracy",
         "deepworks defaults before/other_photos_accuracy"),
        ("random forest: test accuracy", "deepworks defaults now/random_forest_test_accuracy"),
        ("training seconds, now / before", "deepworks defaults now/train_seconds",
         "deepworks defaults before/train_seconds"),
    ],
    "pretrained": [
        ("--pretrained: accuracy on 1,000 other photos / seconds",
         "recipes/pretrained efficientnet_lite0, fine-tuned/other_photos_accuracy",
         "recipes/pretrained efficientnet_lite0, fine-tuned/train_seconds"),
        ("--pretrained --freeze: accuracy / seconds",
         "recipes/pretrained efficientnet_lite0, head only (--freeze)/other_photos_accuracy",
         "recipes/pretrained efficientnet_lite0, head only (--freeze)/train_seconds"),
        ("from scratch, ResNet-20: accuracy / seconds",
         "recipes/from scratch: resnet (the default for photos)/other_photos_accuracy",
         "recipes/from scratch: resnet (the default for photos)/train_seconds"),
        ("from scratch, LeNet-5: accuracy / seconds", "recipes/from scratch: lenet/other_photos_accuracy",
         "recipes/from scratch: lenet/train_seconds"),
        ("gain of the pretrained model (points)", "gain_points"),
    ],
    "detect": [
        ("shapes, defaults: mAP@0.5 / mAP@[.5:.95]", "shapes/map50", "shapes/map"),
        ("the same in a plain loop: mAP@0.5 / mAP@[.5:.95]", "shapes/plain_pytorch_loop/map50",
         "shapes/plain_pytorch_loop/map"),
        ("shapes: training seconds, deepworks / plain", "shapes/train_seconds", "shapes/plain_pytorch_loop/train_seconds"),
        ("loop speed ratio", "shapes/loop_speed_ratio"),
        ("raccoon --pretrained: mAP@0.5 / mAP@[.5:.95]", "raccoon/pretrained/map50", "raccoon/pretrained/map"),
        ("raccoon from scratch: mAP@0.5 / mAP@[.5:.95]", "raccoon/from_scratch/map50", "raccoon/from_scratch/map"),
        ("inference at 320 px, images/s, small detector: torch / ONNX Runtime",
         "inference/centernet/torch_batch_1", "inference/centernet/onnxruntime_batch_1"),
        ("the same, Lite0 detector", "inference/centernet_lite0/torch_batch_1",
         "inference/centernet_lite0/onnxruntime_batch_1"),
    ],
    "restore": [
        ("x3, T91 to Set5 / Set14: PSNR (dB, luma)", "sr3/set5/psnr", "sr3/set14/psnr"),
        ("SRCNN's published x3 (Set5 / Set14)", "sr3/srcnn/set5", "sr3/srcnn/set14"),
        ("our bicubic x3 (Set5 / Set14)", "sr3/set5/bicubic_psnr", "sr3/set14/bicubic_psnr"),
        ("x3: training seconds / epochs", "sr3/train_seconds", "sr3/epochs"),
        ("x2: PSNR Set5 / Set14 (SRCNN 36.66 / 32.45)", "sr24/x2/set5/psnr", "sr24/x2/set14/psnr"),
        ("x4: PSNR Set5 / Set14 (SRCNN 30.49 / 27.50)", "sr24/x4/set5/psnr", "sr24/x4/set14/psnr"),
        ("denoising sigma 25, Set14: PSNR deepworks / non-local means", "denoise/set14_psnr", "denoise/nlm_psnr"),
        ("loop speed, deepworks / plain loop", "loop/loop_speed_ratio"),
        ("megapixels out/s, EDSR x2: torch / ONNX Runtime", "inference/edsr_x2/torch_megapixels_out_per_s",
         "inference/edsr_x2/onnxruntime_megapixels_out_per_s"),
        ("megapixels out/s, denoising U-Net: torch / ONNX Runtime",
         "inference/unet_denoise/torch_megapixels_out_per_s",
         "inference/unet_denoise/onnxruntime_megapixels_out_per_s"),
    ],
    "faces": [
        ("group photos, MTCNN: recall / false faces a photo", "deepworks_mtcnn/recall",
         "deepworks_mtcnn/false_faces_per_photo"),
        ("OpenCV's Haar cascade: recall / false faces a photo", "opencv_haar/recall",
         "opencv_haar/false_faces_per_photo"),
        ("faces a second found (and aligned): deepworks / OpenCV", "deepworks_mtcnn/faces_per_s",
         "opencv_haar/faces_per_s"),
        ("the same, deepworks' networks in ONNX Runtime", "deepworks_mtcnn_onnxruntime/faces_per_s"),
        ("Olivetti's 10 unseen people, TAR at FAR 1 %: pixels + PCA/LDA / Lite0 features + PCA/LDA",
         "recognition/pixels_pca_lda/tar_at_far_1", "recognition/lite0_block13_grid3_pca_lda/tar_at_far_1"),
    ],
    "quantize": [
        ("LeNet-5 on MNIST, test accuracy: float / int8", "lenet_mnist/float_accuracy", "lenet_mnist/int8_accuracy"),
        ("the same: top-1 agreement, int8 speed against float at batch 1 / 32", "lenet_mnist/agreement",
         "lenet_mnist/speed_ratio_batch_1", "lenet_mnist/speed_ratio_batch_32"),
        ("ResNet-20 on Fashion-MNIST, test accuracy: float / int8", "resnet20_fashion_mnist/float_accuracy",
         "resnet20_fashion_mnist/int8_accuracy"),
        ("the same: top-1 agreement, int8 speed against float at batch 1 / 32", "resnet20_fashion_mnist/agreement",
         "resnet20_fashion_mnist/speed_ratio_batch_1", "resnet20_fashion_mnist/speed_ratio_batch_32"),
        ("top-1 agreement of a sound classifier (FSDD, features in float) and a text LSTM (dynamic)",
         "cnn1d_fsdd/agreement", "lstm_text/agreement"),
        ("ResNet-20 on 4,000 CIFAR-10 images: float / int8 accuracy, agreement", "resnet20_cifar10_4000/float_accuracy",
         "resnet20_cifar10_4000/int8_accuracy", "resnet20_cifar10_4000/agreement"),
        ("a shapes detector, test mAP@[.5:.95]: float / int8", "centernet_shapes/float_map",
         "centernet_shapes/int8_map"),
        ("Multi30k GRU, next words the same: encoder / decoder step", "gru_multi30k/graphs/encoder/agreement",
         "gru_multi30k/graphs/decoder_step/agreement"),
        ("the same GRU's test BLEU through the graphs: float / all in int8", "gru_multi30k/loop_bleu_float",
         "gru_multi30k/loop_bleu_int8"),
        ("Multi30k Transformer, next words the same: encoder / decoder step",
         "transformer_multi30k/graphs/encoder/agreement", "transformer_multi30k/graphs/decoder_step/agreement"),
        ("the same Transformer's test BLEU through the graphs: float / all in int8",
         "transformer_multi30k/loop_bleu_float", "transformer_multi30k/loop_bleu_int8"),
    ],
    "batch": [
        ("10,000 PNG files, images a second once started: local / Ray / Spark", "local/images_per_s_started",
         "ray/images_per_s_started", "spark/images_per_s_started"),
        ("the same, start included", "local/images_per_s_whole", "ray/images_per_s_whole",
         "spark/images_per_s_whole"),
        ("answers identical to local: Ray / Spark", "ray/identical_to_local", "spark/identical_to_local"),
    ],
    "track": [
        ("LeNet-5 on MNIST, 2 epochs' seconds: untracked / --track mlflow", "median_train_seconds/none",
         "median_train_seconds/mlflow"),
        ("overhead of epoch time; extra seconds for the whole command", "overhead_of_epoch_time",
         "tracking_extra_s"),
    ],
    "package": [
        ("the runtime's environment without torch: MB, seconds to install", "environment/size_mb",
         "environment/install_s"),
        ("seconds from start to ready: package / deepworks serve", "ready_s/package", "ready_s/deepworks serve"),
        ("a lone client's requests a second: package / deepworks serve", "lone_client_requests_per_s/package",
         "lone_client_requests_per_s/deepworks serve"),
    ],
    "faces_recognition": [
        ("Olivetti's 10 unseen people, TAR at FAR 1 %: deepworks / plain PyTorch loop (dlib's network)",
         "deepworks/tar_at_far_1", "plain_pytorch_loop/tar_at_far_1"),
        ("rank-1 after enrolling 3 photos: deepworks / plain loop", "deepworks/rank1", "plain_pytorch_loop/rank1"),
        ("the same, Lite0's ImageNet features: TAR at FAR 1 %, deepworks / plain loop",
         "deepworks_lite0/tar_at_far_1", "plain_pytorch_loop_lite0/tar_at_far_1"),
        ("faces a second found, aligned, embedded and named: torch / ONNX Runtime", "speed/torch_faces_per_s",
         "speed/onnxruntime_faces_per_s"),
    ],
    "segment": [
        ("shapes-seg, defaults: test mean IoU / training seconds", "shapes/miou", "shapes/train_seconds"),
        ("the same: baseline's mean IoU", "shapes/baseline/miou"),
        ("ISBI 2012, U-Net: membrane IoU / pixel error / Rand error", "isbi/deepworks/membrane_iou",
         "isbi/deepworks/pixel_error", "isbi/deepworks/rand_error"),
        ("the same U-Net in a plain PyTorch loop, same seconds", "isbi/plain_pytorch_loop/membrane_iou",
         "isbi/plain_pytorch_loop/pixel_error", "isbi/plain_pytorch_loop/rand_error"),
        ("--pretrained, same seconds", "isbi/pretrained/membrane_iou", "isbi/pretrained/pixel_error",
         "isbi/pretrained/rand_error"),
        ("ISBI, 40 epochs over seeds 1 and 2: mean membrane IoU, deepworks / plain loop", "isbi_seeds/deepworks_mean",
         "isbi_seeds/plain_mean"),
        ("loop speed, deepworks / plain loop", "loop/loop_speed_ratio"),
        ("inference at 256 px, images/s, U-Net: torch / ONNX Runtime, batch 1", "inference/unet/torch_batch_1",
         "inference/unet/onnxruntime_batch_1"),
        ("the same, batch 16", "inference/unet/torch_batch_16", "inference/unet/onnxruntime_batch_16"),
        ("the same, Lite0 decoder, batch 1", "inference/unet_lite0/torch_batch_1",
         "inference/unet_lite0/onnxruntime_batch_1"),
    ],
    "audio": [
        ("FSDD official split: test accuracy / training seconds", "official/accuracy", "official/train_seconds"),
        ("leave one speaker out: mean / worst accuracy", "leave_one_speaker_out/mean_accuracy",
         "leave_one_speaker_out/worst/accuracy"),
        ("loop speed, deepworks / plain loop", "plain_pytorch_loop/loop_speed_ratio"),
        ("log-mel features, clips/s", "features/log_mel_clips_per_s"),
        ("predict one 0.5 s clip (ms)", "inference/ms_per_clip"),
    ],
    "asr": [
        ("fsdd-strings: test WER / CER", "fsdd/test_wer", "fsdd/test_cer"),
        ("the same, greedy decoding: test WER", "fsdd/greedy_test_wer"),
        ("the same: epochs / training seconds", "fsdd/epochs", "fsdd/train_seconds"),
        ("baseline, digit classifier over an energy segmentation: test WER", "baseline/test_wer"),
        ("speakers held out: mean WER, deepworks / plain PyTorch loop (same seconds)", "speakers/mean_wer",
         "speakers/plain_mean_wer"),
        ("loop speed, deepworks / plain loop", "loop/loop_speed_ratio"),
        ("real-time factor on a minute of audio, torch / ONNX Runtime", "rtf/torch_rtf", "rtf/onnx_rtf"),
    ],
    "textclass": [
        ("SST-2, fastText (defaults): dev / test accuracy", "sst2/dev_accuracy", "sst2/test_accuracy"),
        ("the same: TF-IDF baseline's test accuracy", "sst2/baseline_test_accuracy"),
        ("the same: epochs / training seconds", "sst2/epochs", "sst2/train_seconds"),
        ("SST-2, MiniLM --freeze: dev / test accuracy", "minilm_frozen/dev_accuracy", "minilm_frozen/test_accuracy"),
        ("the same: wall seconds (reading, embeddings, training, test)", "minilm_frozen/wall_seconds"),
        ("SST-2, MiniLM fine-tuned 1 epoch: dev / test accuracy", "minilm_tuned/dev_accuracy",
         "minilm_tuned/test_accuracy"),
        ("the same: training / wall seconds", "minilm_tuned/train_seconds", "minilm_tuned/wall_seconds"),
        ("langid (en/de/fr), fastText: test accuracy / wall seconds", "langid/test_accuracy", "langid/wall_seconds"),
        ("inference, fastText sentences/s, torch / ONNX Runtime, batch 1", "inference/fasttext_torch_batch1",
         "inference/fasttext_onnx_batch1"),
        ("the same, batch 64", "inference/fasttext_torch_batch64", "inference/fasttext_onnx_batch64"),
        ("inference, MiniLM sentences/s, torch / ONNX Runtime, batch 1", "inference/minilm_torch_batch1",
         "inference/minilm_onnx_batch1"),
        ("the same, batch 64", "inference/minilm_torch_batch64", "inference/minilm_onnx_batch64"),
        ("loop speed, deepworks / plain loop (median, paired)", "loop/ratio", "loop/paired_ratio"),
    ],
    "automl": [
        ("Fashion-MNIST, 10 min: best trial's test accuracy", "tpe/best_test_accuracy"),
        ("trials / pruned share", "tpe/trials", "tpe/pruned_share"),
        ("the same budget as Optuna alone (random, no pruning)", "random/best_test_accuracy"),
        ("hand-tuned ResNet-8: test accuracy", "hand/test_accuracy"),
        ("Optuna's example: best validation accuracy", "optuna/best_validation_accuracy"),
        ("deepworks' best on the same validation images", "tpe/on_reference_validation_images"),
        ("MNIST, 5 min: best test accuracy", "mnist/best_test_accuracy"),
        ("goals met", "goals/*"),
    ],
    "threads": [
        ("text, beside a busy process: after / before", "text/busy/after_over_before"),
        ("text, beside a busy process: share of the quiet speed after", "text/busy/after/share_of_quiet"),
        ("translate, beside a busy process: after / before", "translate/busy/after_over_before"),
        ("translate, beside a busy process: share of the quiet speed after", "translate/busy/after/share_of_quiet"),
        ("text alone: after / before", "text/quiet/after_over_before"),
        ("translate alone: after / before", "translate/quiet/after_over_before"),
    ],
    "scale": [
        ("ResNet-20 streamed / in memory", "stream/resnet/ratio_stream_over_memory"),
        ("LeNet-5 streamed / in memory", "stream/lenet/ratio_stream_over_memory"),
        ("peak memory streaming 10,000 / 200,000 JPEGs (MB)", "memory/10000/peak_rss_mb", "memory/200000/peak_rss_mb"),
        ("torchrun 2 processes / 1 process of 2 threads", "engines/ratio_torchrun_over_one_process"),
        ("start-up cost (s): torchrun / Spark / Ray", "engines/startup_cost_s/torchrun", "engines/startup_cost_s/spark",
         "engines/startup_cost_s/ray"),
        ("all-reduce, 2 processes (ms): LeNet-5 / ResNet-20",
         "allreduce/sizes/lenet (MNIST, batch 256)/allreduce_ms_measured_2_processes_loopback",
         "allreduce/sizes/resnet-20 (CIFAR-10, batch 128)/allreduce_ms_measured_2_processes_loopback"),
    ],
    "serve": [("matrix", "server/lenet", "LeNet-5"), ("matrix", "server/resnet20", "ResNet-20"),
              ("raw forward pass, LeNet-5 batch 1 (ms): torch / ONNX Runtime", "raw/lenet_batch1/torch/p50_ms",
               "raw/lenet_batch1/onnxruntime/p50_ms"),
              ("soak: requests / errors", "soak/requests_about", "soak/non_2xx"),
              ("Transformer decoding, cached / re-reading the prefix (s)", "decode/cached_seconds",
               "decode/prefix_seconds")],
    "same_seed": [("the same weights after the change", "identical/*")],
    "ui": [("lighthouse", "Lighthouse"),
           ("the page's first load (entry script and styles), bytes / gzip", "bundle/first_load_bytes",
            "bundle/first_load_gzip_bytes"),
           ("all of the page's scripts and styles, bytes / gzip", "bundle/total_bytes", "bundle/total_gzip_bytes"),
           ("machine load during the desktop / mobile runs (1-minute average, most)", "desktop/load_most",
            "mobile/load_most")],
}
SPEC["serve-after-hardening"] = SPEC["serve"]
GENERIC = re.compile(r"ratio|speedup|accuracy|bleu|fid|map|median")


def results() -> dict[str, dict]:
    """Every results file by name (image.json -> "image")."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))}


def fmt(value) -> str:
    """One figure as the page writes it: thousands separated, at most four significant digits below 1,000."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):  # a figure per seed
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.1f}".removesuffix(".0")
        if abs(value) < 1e-3 and value:
            return f"{value:.3g}"
        text = f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
        text = text.rstrip("0")
        return text + "0" if text.endswith(".") else text
    return str(value)


def walk(data, path: str, with_machine: bool = False):
    """The value at `path` and the date nearest above it ((None, None) when the path is missing); with_machine, the
    date is followed by the CPU of the nearest machine record above it."""
    node, date = data, data.get("date") if isinstance(data, dict) else None
    cpu = cpu_of(data)
    for part in path.split("/"):
        if not isinstance(node, dict) or part not in node:
            return None, None
        node = node[part]
        if isinstance(node, dict):
            date = node.get("date") or (node.get("measured") or {}).get("date") or date
            cpu = cpu_of(node) or cpu_of(node.get("measured")) or cpu
    return node, (f"{date}, {cpu}" if with_machine and date and cpu else date)


def cpu_of(node) -> str | None:
    """The CPU of a dict's own machine record, if it has one."""
    machine = node.get("machine") if isinstance(node, dict) else None
    return machine.get("cpu") if isinstance(machine, dict) else None


def machine_words(m: dict) -> str:
    return f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, torch {m.get('torch', '?')}, {m.get('device', 'cpu')}"


def machine_records(data):
    """Every machine record in the file, breadth first (the top-level one, the latest run's, first): a partial run
    re-measures some sections, and each section keeps the machine it ran on."""
    queue = [data]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            if isinstance(node.get("machine"), dict):
                yield node["machine"]
            queue.extend(node.values())


def machines_of(data) -> list[str]:
    """The distinct machines in the file, in words, the top-level one first."""
    return list(dict.fromkeys(machine_words(m) for m in machine_records(data)))


def cpus_of(data) -> set[str]:
    """The CPUs of every machine record in the file."""
    return {m["cpu"] for m in machine_records(data) if m.get("cpu")}


def dates_of(data) -> list[str]:
    found, stack = [], [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found += [v for k, v in node.items() if k == "date" and isinstance(v, str)]
            stack.extend(node.values())
    return sorted(found)


def rows_of(name: str, data: dict) -> list[tuple[str, str, str]]:
    """(label, value, date) rows for the figures SPEC names, or the generic reader's choice."""
    rows, several = [], len(cpus_of(data)) > 1  # then each row names its CPU beside its date
    for label, *paths in SPEC.get(name, []):
        if label in ("matrix", "lighthouse"):
            continue
        if len(paths) == 1 and paths[0].endswith("/*"):
            node, date = walk(data, paths[0][:-2], several)
            for key, value in (node or {}).items():
                rows.append((f"{label}: {key}", fmt(value), date or ""))
            continue
        found = [walk(data, p, several) for p in paths]
        if any(v is None or isinstance(v, dict) or (isinstance(v, list) and not all(
                isinstance(x, (int, float)) for x in v)) for v, _ in found):
            continue
        rows.append((label, " / ".join(fmt(v) for v, _ in found), next((d for _, d in found if d), "")))
    return rows or generic_rows(data)


def generic_rows(data, prefix: str = "", date: str = "") -> list[tuple[str, str, str]]:
    """Numeric figures whose names say they are results (ratios, accuracies, medians ...), at most 20."""
    rows = []
    if isinstance(data, dict):
        date = data.get("date", date) if isinstance(data.get("date", date), str) else date
        for key, value in data.items():
            if key in ("machine", "settings") or key.startswith("calibration"):
                continue
            label = f"{prefix}{key}"
            if isinstance(value, dict):
                rows += generic_rows(value, label + " / ", date)
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and GENERIC.search(key):
                rows.append((label, fmt(value), date))
    return rows[:20]


def matrix(data: dict, path: str, title: str) -> str:
    """Requests per second: one row per server set-up, one column per number of connections."""
    node, date = walk(data, path)
    if not isinstance(node, dict):
        return ""
    setups = {k: v for k, v in node.items() if k != "ratios" and isinstance(v, dict)}
    columns = sorted({c for v in setups.values() for c in v if c.startswith("c")}, key=lambda c: int(c[1:]))
    lines = [f"| {title}, requests/s | " + " | ".join(f"c={c[1:]}" for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for setup, cells in setups.items():
        values = [fmt(round((cells.get(c) or {}).get("req_per_s") or 0)) for c in columns]
        lines.append(f"| {setup.replace('_', ' ')} | " + " | ".join(values) + " |")
    return "\n".join(lines) + (f"\n\nMeasured {date}." if date else "")


LIGHTHOUSE = (("performance", "perf."), ("accessibility", "a11y"), ("best-practices", "best pr."), ("seo", "SEO"))


def lighthouse(data: dict) -> str:
    """Lighthouse's scores: one row per page, the desktop preset's four categories, then the mobile ones, then the
    mobile run's metrics (the slower of the two)."""
    desktop, mobile = data.get("desktop") or {}, data.get("mobile") or {}
    pages = [k for k, v in {**desktop, **mobile}.items() if isinstance(v, dict) and "address" in v]
    if not pages:
        return ""
    head = [f"desktop {label}" for _, label in LIGHTHOUSE] + [f"mobile {label}" for _, label in LIGHTHOUSE]
    head += ["mobile FCP / LCP (ms)", "mobile TBT (ms)", "mobile CLS"]
    lines = ["| page | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for page in pages:
        d, m = desktop.get(page) or {}, mobile.get(page) or {}
        address = (d or m)["address"]
        cells = [fmt(d.get(c, "")) for c, _ in LIGHTHOUSE] + [fmt(m.get(c, "")) for c, _ in LIGHTHOUSE]
        cells += [f"{fmt(m['fcp_ms'])} / {fmt(m['lcp_ms'])}" if "fcp_ms" in m else "", fmt(m.get("tbt_ms", "")),
                  fmt(m.get("cls", ""))]
        lines.append(f"| `{address}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(name: str, data: dict) -> str:
    """The generated block for one results file."""
    days = sorted({d[:10] for d in dates_of(data)})
    when = f"; measured {days[0]}" + (f" to {days[-1]}" if len(days) > 1 else "") if days else ""
    machines = machines_of(data)
    on = f" on {machines[0]}" if len(machines) == 1 else f" on {len(machines)} machines: {'; '.join(machines)}"
    head = f"*Figures read from `bench/results/{name}.json` when this site was built{when}{on if machines else ''}.*"
    parts = [head, "", "| figure | value | measured |", "|---|---|---|"]
    parts += [f"| {label} | {value} | {date} |" for label, value, date in rows_of(name, data)]
    for entry in SPEC.get(name, []):
        if entry[0] == "matrix":
            block = matrix(data, entry[1], entry[2])
            parts += ["", block] if block else []
        if entry[0] == "lighthouse":
            block = lighthouse(data)
            parts += ["", block] if block else []
    return "\n".join(parts)


def fill(markdown: str) -> str:
    """Replace each marker with its table, and add the results files the page does not mention."""
    found = results()

    def one(match):
        name = match.group(1)
        if name not in found:
            raise ValueError(f"docs/benchmarks.md names bench/results/{name}.json, which does not exist.")
        return table(name, found[name])

    filled = MARKER.sub(one, markdown)
    missing = [n for n in found if not re.search(rf"<!--\s*bench:{re.escape(n)}\s*-->", markdown)]
    if missing:
        filled += "\n\n## Other results\n\n" + "\n\n".join(f"### {n}\n\n{table(n, found[n])}" for n in missing)
    return filled
