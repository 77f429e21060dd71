"""``sitewatch detect`` side by side with SAHI slicing around the same ONNX model, on one large real scene.

    pip install --no-deps sahi fire termcolor   # SAHI's own requirement pulls opencv-python beside the headless build
    python bench/peer_sahi.py ../shared/data [--model PATH ...] [--grid 5] [--batch 2] [--identify] [--sets]

Without ``--model``: the bundled float32 model, then this CPU's default model if it is another (the
int8 twin on CPUs with int8 dot products; ``sitewatch.detect.registry.default_model``).

The scene: the held-out airbus-pleiades images (0.5 m Pléiades, 2560 px), laid out cyclically on a
``grid`` x ``grid`` mosaic (5: 12 800 x 12 800 px, 41 km²) and written as a tiled, JPEG-compressed
GeoTIFF with overviews (a COG) in UTM; its labels are the images' labels shifted into place.

Each run is a separate process, so wall time and peak resident memory (``wait4``) are its own:

* ``sitewatch detect MOSAIC --json --score 0.05 --no-identify`` with each ``--model`` (the first
  is the fp32 reference; later ones, e.g. a quantised model, are compared with SAHI on the first):
  boxes only, the work SAHI does; with ``--identify`` also the first model as ``detect`` runs by
  default, measuring every detection and ranking its types (work SAHI does not do);
* SAHI 0.12 ``get_sliced_prediction`` with a ``DetectionModel`` wrapper around the first model:
  the same tiles (512 model pixels = 307 scene pixels at 0.3 m working GSD, overlap 25 %), the same
  batch size, the same decoding and score floor; each slice is resized to the working GSD inside
  the wrapper, as ``sitewatch`` does when it reads a tile. SAHI reads the whole image into memory,
  merges axis-aligned boxes (its default GREEDYNMM, IOS 0.5) and has no full-image pass here
  (``perform_standard_pred=False``: a full-image pass of a 41 km² scene does not fit any tile).

``--sets`` then runs SAHI (float32 model) and ``sitewatch`` (each model) over every validation image
of every labelled set, each tool in its own process, with the same slicing rule per image (tiles at
the model's working GSD, resampled where the image's GSD is known and finer), and prints wall
time, peak memory and AP50 per set and category.

AP50 is computed for both on axis-aligned boxes (SAHI has no orientation): each tool's boxes and the
labels are taken as their envelopes, scored by the evaluator of ``sitewatch evaluate``. The count
at the model's operating threshold is printed beside the labelled count.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _data import data_tree
from sitewatch.detect.sliced import DEFAULT_BATCH_SIZE

#: Score floor of both tools' detections (AP needs the low-score tail; as ``sitewatch evaluate``).
AP_FLOOR = 0.05
#: Scene GSD of the mosaic, metres (the airbus-pleiades images').
MOSAIC_GSD = 0.5


def build_mosaic(data: Path, grid: int, out: Path) -> tuple[Path, list]:
    """The mosaic COG and its labelled objects (scene pixels, axis-aligned envelopes)."""
    import rasterio
    from PIL import Image
    from rasterio.transform import from_origin

    from sitewatch.detect.evaluate import iter_labelled

    items = [im for im, _ in iter_labelled(data / "airbus-pleiades", "val")]
    side = 2560
    size = grid * side
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": 3, "dtype": "uint8", "crs": "EPSG:32637",
        "transform": from_origin(500_000.0, 4_000_000.0, MOSAIC_GSD, MOSAIC_GSD), "tiled": True, "blockxsize": 512,
        "blockysize": 512, "compress": "JPEG", "photometric": "YCBCR", "jpeg_quality": 90, "interleave": "pixel",
    }  # fmt: skip
    objects = []
    with rasterio.open(out, "w", **profile) as dst:
        for k in range(grid * grid):
            im = items[k % len(items)]
            row, col = divmod(k, grid)
            rgb = np.asarray(Image.open(im.image_path).convert("RGB"))[:side, :side]
            dst.write(
                rgb.transpose(2, 0, 1),
                window=rasterio.windows.Window(col * side, row * side, rgb.shape[1], rgb.shape[0]),
            )
            for o in im.objects:
                c = np.asarray(o.corners, dtype=float) + (col * side, row * side)
                objects.append((o, c))
        dst.build_overviews([2, 4, 8, 16], rasterio.enums.Resampling.average)
    return out, objects


def labelled_mosaic(path: Path, objects: list):  # noqa: ANN201 - a LabelledImage
    from dataclasses import replace

    from sitewatch.dota import LabelledImage

    def envelope(c: np.ndarray) -> list[tuple[float, float]]:
        (x0, y0), (x1, y1) = c.min(axis=0), c.max(axis=0)
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]

    objs = [replace(o, corners=envelope(c)) for o, c in objects]
    return LabelledImage(path, "airbus-pleiades", MOSAIC_GSD, objs, axis_aligned=True)


# --- the SAHI side (runs in its own process) ------------------------------------------------


def sahi_model(model: Path):  # noqa: ANN201 - a sahi DetectionModel
    """A SAHI ``DetectionModel`` around ``model``; set its ``scale`` (model pixels per image pixel) per image."""
    import cv2
    from sahi.models.base import DetectionModel
    from sahi.prediction import ObjectPrediction

    from sitewatch.detect.decode import decode
    from sitewatch.detect.onnx import OnnxDetector

    det = OnnxDetector(model)
    info, backend = det.info, det.backend
    thresholds = np.full(len(info.categories), AP_FLOOR, dtype=np.float32)

    class SitewatchOnnx(DetectionModel):
        scale = 1.0

        def load_model(self) -> None:
            self.model = backend

        def set_model(self, model, **kwargs) -> None:  # noqa: ANN001, ANN003
            self.model = model

        def _boxes(self, images: list[np.ndarray]) -> list:
            scale = self.scale
            resized = [
                cv2.resize(
                    im,
                    (round(im.shape[1] * scale), round(im.shape[0] * scale)),
                    interpolation=cv2.INTER_LINEAR,
                )
                for im in images
            ]
            h, w = max(r.shape[0] for r in resized), max(r.shape[1] for r in resized)
            h, w = -(-h // 32) * 32, -(-w // 32) * 32
            x = np.zeros((len(resized), 3, h, w), np.float32)
            for k, r in enumerate(resized):
                x[k, :, : r.shape[0], : r.shape[1]] = r.transpose(2, 0, 1)
            heat, geom = self.model.run(x)
            boxes = decode(heat, geom, score_threshold=thresholds, stride=info.stride, top_k=det.top_k)
            return [boxes.take(np.flatnonzero(boxes.tile == k)) for k in range(len(images))]

        def perform_inference(self, image: np.ndarray) -> None:
            self._original_predictions = self._boxes([image])

        def perform_batch_inference(self, images: list[np.ndarray]) -> None:
            self._original_predictions = self._boxes(images)

        def _create_object_prediction_list_from_original_predictions(
            self, shift_amount_list=None, full_shape_list=None
        ) -> None:  # noqa: ANN001
            shifts = shift_amount_list or [[0, 0]]
            shifts = shifts if isinstance(shifts[0], list | tuple) else [shifts]
            per_image = []
            for k, boxes in enumerate(self._original_predictions):
                preds = []
                c = boxes.corners() / self.scale if len(boxes) else np.zeros((0, 4, 2))
                env = np.concatenate([c.min(axis=1), c.max(axis=1)], axis=1)
                for (x0, y0, x1, y1), s, c in zip(env, boxes.score, boxes.category, strict=True):
                    if x1 > x0 and y1 > y0:
                        preds.append(ObjectPrediction(bbox=[max(0.0, x0), max(0.0, y0), x1, y1], category_id=int(c), score=float(s),
                                                      category_name=info.categories[int(c)], shift_amount=list(shifts[k % len(shifts)])))  # fmt: skip
                per_image.append(preds)
            self._object_prediction_list_per_image = per_image

    wrapped = SitewatchOnnx(
        confidence_threshold=AP_FLOOR,
        category_mapping={str(i): c for i, c in enumerate(info.categories)},
        device="cpu",
    )
    return wrapped, info


def sahi_predict(wrapped, info, image: Path | np.ndarray, gsd_m: float | None, batch: int) -> list[dict]:  # noqa: ANN001
    """SAHI's sliced prediction of one image: slices of one model tile at the model's working GSD,
    resampled to it where the image's GSD is known and finer (as ``sitewatch`` reads tiles)."""
    from sahi.predict import get_sliced_prediction

    working = float(info.working_gsd_m) if info.working_gsd_m else None
    wrapped.scale = gsd_m / working if gsd_m and working and gsd_m < working / 1.1 else 1.0
    slice_px = round(info.input_tile / wrapped.scale)
    result = get_sliced_prediction(
        image, wrapped, slice_height=slice_px, slice_width=slice_px, overlap_height_ratio=0.25, overlap_width_ratio=0.25,
        perform_standard_pred=False, batch_size=batch, verbose=0,
    )  # fmt: skip
    return [
        {"bbox": p.bbox.to_xyxy(), "score": p.score.value, "category": p.category.name}
        for p in result.object_prediction_list
    ]


def sahi_worker(image: Path, model: Path, out: Path, batch: int) -> None:
    """Run SAHI over ``image`` (the mosaic) with a wrapper around ``model``; write its boxes as JSON."""
    wrapped, info = sahi_model(model)
    out.write_text(json.dumps(sahi_predict(wrapped, info, str(image), MOSAIC_GSD, batch)))


def sets_worker(tool: str, data: Path, model: Path, out: Path, batch: int) -> None:
    """Run ``tool`` (``sahi`` or ``sitewatch``) over every validation image under ``data``; write, per
    image, its boxes as axis-aligned envelopes ``[x0, y0, x1, y1, score, category]`` (JSON)."""
    from sitewatch.cli.detect import open_image
    from sitewatch.detect.evaluate import iter_labelled
    from sitewatch.detect.onnx import OnnxDetector

    found = {}
    if tool == "sahi":
        import cv2

        wrapped, info = sahi_model(model)
    else:
        det = OnnxDetector(model, batch_size=batch)
        det.score_threshold = AP_FLOOR
    for image, _ in iter_labelled(data, "val"):
        if tool == "sahi":
            rgb = cv2.cvtColor(cv2.imread(str(image.image_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            rows = [
                [*r["bbox"], r["score"], r["category"]]
                for r in sahi_predict(wrapped, info, rgb, image.gsd_m, batch)
            ]
        else:
            with open_image(str(image.image_path), image.gsd_m) as scene:
                dets = det.detect(scene, gsd_m=image.gsd_m)
            rows = []
            for d in dets:
                c = np.asarray(d.box.corners())
                rows.append([*c.min(axis=0).tolist(), *c.max(axis=0).tolist(), d.score, d.category])
        found[str(image.image_path)] = rows
    out.write_text(json.dumps(found))


def compare_sets(data: Path, models: list[Path], batch: int) -> None:
    """SAHI and ``sitewatch`` on every validation set: wall time, peak memory, AP50 per set and category."""
    from dataclasses import replace

    from sitewatch.detect.evaluate import Evaluator, iter_labelled
    from sitewatch.detect.onnx import OnnxDetector
    from sitewatch.dota import LabelledImage
    from sitewatch.types import Detection, OrientedBox

    thresholds = OnnxDetector(models[0]).score_thresholds
    items = list(iter_labelled(data, "val"))
    runs = [("sahi", models[0])] + [("sitewatch", m) for m in models]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for tool, model in runs:
            out = Path(tmp) / f"{tool}-{len(results)}.json"
            wall, rss = timed(
                [
                    sys.executable,
                    __file__,
                    "--sets-worker",
                    tool,
                    str(data),
                    str(model),
                    str(out),
                    "--batch",
                    str(batch),
                ]
            )
            results.append((f"{'SAHI ' + __import__('sahi').__version__ if tool == 'sahi' else 'sitewatch'} + {model.name}", wall, rss,
                            json.loads(out.read_text())))  # fmt: skip

    def envelope(corners) -> list[tuple[float, float]]:  # noqa: ANN001
        c = np.asarray(corners, dtype=float)
        (x0, y0), (x1, y1) = c.min(axis=0), c.max(axis=0)
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]

    table: dict[tuple[str, str], list] = {}
    for _name, _, _, found in results:
        evs: dict[str, Evaluator] = {}
        for image, cats in items:
            truth = LabelledImage(image.image_path, image.dataset, image.gsd_m,
                                  [replace(o, corners=envelope(o.corners)) for o in image.objects], axis_aligned=True)  # fmt: skip
            dets = [Detection(box=OrientedBox.make((x0 + x1) / 2, (y0 + y1) / 2, y1 - y0, x1 - x0, 0.0), category=c, score=s)
                    for x0, y0, x1, y1, s, c in found[str(image.image_path)]]  # fmt: skip
            evs.setdefault(image.dataset, Evaluator(AP_FLOOR, 0.5, thresholds)).add(truth, dets, cats)
        for ds, ev in evs.items():
            r = ev.result()
            for cat, v in {**r.categories, **r.pooled}.items():
                if v.objects and cat != "vehicle":
                    table.setdefault((ds, cat), [v.objects]).append(v.ap50)
    print(
        f"validation sets: {len(items)} images; AP50 on axis-aligned envelopes, detections at score >= {AP_FLOOR}"
    )
    print(f"{'run':<48} {'wall s':>8} {'peak MiB':>9}   vs SAHI: time  memory")
    for name, wall, rss, _ in results:
        print(f"{name:<48} {wall:8.1f} {rss:9.0f}   {wall / results[0][1]:12.2f} {rss / results[0][2]:7.2f}")
    print(
        f"{'dataset':<20} {'category':<18} {'objects':>7} "
        + " ".join(f"{'AP50 ' + str(k):>9}" for k in range(len(results)))
    )
    worst = [0.0] * len(results)
    for (ds, cat), (n, *aps) in sorted(table.items()):
        print(f"{ds:<20} {cat:<18} {n:>7} " + " ".join(f"{a:9.3f}" for a in aps))
        worst = [min(w, a - aps[0]) for w, a in zip(worst, aps, strict=True)]
    print(
        "AP50 columns in the order of the runs above; largest drop against SAHI per run: "
        + ", ".join(f"{w:+.3f}" for w in worst)
    )


# --- the comparison --------------------------------------------------------------------------


#: Run as ``python -c PEAK_RUNNER OUT (-m MODULE | SCRIPT) ARGS...``: runs the module or script as
#: ``__main__`` and writes the process's own VmHWM (MiB) to OUT at exit.
PEAK_RUNNER = """
import atexit, runpy, sys
out, kind, target, *rest = sys.argv[1:]
def peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            open(out, 'w').write(str(int(line.split()[1]) / 1024))
atexit.register(peak)
sys.argv = [target, *rest]
runpy.run_module(target, run_name='__main__', alter_sys=True) if kind == '-m' else runpy.run_path(target, run_name='__main__')
"""


def timed(cmd: list[str]) -> tuple[float, float]:
    """Run ``python (-m MODULE | SCRIPT) ARGS...`` in its own process: (wall s, peak resident MiB),
    exit status checked.

    The peak is the child's own high-water mark (VmHWM, read by the child at exit), not
    ``getrusage``'s ``ru_maxrss``: Linux carries the parent's peak into a child started by
    (v)fork + exec, so a child of this process (which built a 491 MB mosaic) would report at least
    this process's own peak.
    """
    with tempfile.NamedTemporaryFile(suffix=".peak") as f:
        args = cmd[1:] if cmd[1] == "-m" else ["-s", *cmd[1:]]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [cmd[0], "-c", PEAK_RUNNER, f.name, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, err_bytes = proc.communicate()
        wall = time.perf_counter() - t0
        err = err_bytes.decode()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:4])}... failed: {err[-2000:]}")
        return wall, float(Path(f.name).read_text())


def score(truth, detections: list, thresholds: dict[str, float]) -> tuple[float, int]:  # noqa: ANN001
    """(aircraft AP50 on envelopes, count at the operating threshold)."""
    from sitewatch.detect.evaluate import Evaluator

    ev = Evaluator(AP_FLOOR, 0.5, thresholds)
    ev.add(truth, detections, ["aircraft"])
    r = ev.result().categories["aircraft"]
    n = sum(1 for d in detections if d.category == "aircraft" and d.score >= thresholds["aircraft"])
    return r.ap50, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=data_tree, nargs="?")
    ap.add_argument(
        "--model",
        action="append",
        type=Path,
        default=None,
        help="model (repeatable; the first is the fp32 reference)",
    )
    ap.add_argument(
        "--grid", type=int, default=5, help="mosaic side in images (5: 12 800 px; 0: no mosaic, with --sets)"
    )
    ap.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="tiles per model call, both tools (default: the detector's)",
    )
    ap.add_argument(
        "--identify",
        action="store_true",
        help="also time `detect` identifying (its default) with the first model",
    )
    ap.add_argument(
        "--sets",
        action="store_true",
        help="also run both tools on every validation image of every labelled set (AP50 per set and category)",
    )
    ap.add_argument(
        "--sahi-worker", nargs=3, type=Path, metavar=("IMAGE", "MODEL", "OUT"), help=argparse.SUPPRESS
    )
    ap.add_argument(
        "--sets-worker", nargs=4, metavar=("TOOL", "DATA", "MODEL", "OUT"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.sahi_worker:
        sahi_worker(*args.sahi_worker, batch=args.batch)
        return
    if args.sets_worker:
        tool, data, model, out = args.sets_worker
        sets_worker(tool, Path(data), Path(model), Path(out), batch=args.batch)
        return
    if args.data is None:
        ap.error("the data tree is required")
    from sitewatch.detect.onnx import OnnxDetector
    from sitewatch.detect.registry import FLOAT_MODEL
    from sitewatch.detect.registry import models as registry
    from sitewatch.types import Detection, OrientedBox

    # By default: the float32 model (SAHI's and the first `detect` run) and the default model of this
    # CPU (the int8 twin where it has int8 dot products), so the shipped default is timed in the same run.
    models = args.model or list(dict.fromkeys([registry.path(FLOAT_MODEL), registry.resolve()]))
    thresholds = OnnxDetector(models[0]).score_thresholds
    if args.grid == 0:  # the validation sets only
        compare_sets(args.data, models, args.batch)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        mosaic, objects = build_mosaic(args.data, args.grid, folder / "mosaic.tif")
        truth = labelled_mosaic(mosaic, objects)
        n_true = sum(1 for o in truth.objects if o.category == "aircraft" and not o.difficult)
        print(f"mosaic: {args.grid * 2560} x {args.grid * 2560} px at {MOSAIC_GSD} m ({(args.grid * 1.28) ** 2:.0f} km²), "
              f"{n_true} labelled aircraft, {mosaic.stat().st_size / 2**20:.0f} MiB COG, built in {time.perf_counter() - t0:.0f} s")  # fmt: skip
        rows = []
        out = folder / "sahi.json"
        wall, rss = timed(
            [
                sys.executable,
                __file__,
                "--sahi-worker",
                str(mosaic),
                str(models[0]),
                str(out),
                "--batch",
                str(args.batch),
            ]
        )
        sahi_dets = []
        for r in json.loads(out.read_text()):
            x0, y0, x1, y1 = r["bbox"]
            box = OrientedBox.make((x0 + x1) / 2, (y0 + y1) / 2, y1 - y0, x1 - x0, 0.0)
            sahi_dets.append(Detection(box=box, category=r["category"], score=r["score"]))
        rows.append(
            (
                f"SAHI {__import__('sahi').__version__} + {models[0].name}",
                wall,
                rss,
                *score(truth, sahi_dets, thresholds),
            )
        )
        runs = [(m, "--no-identify") for m in models] + ([(models[0], "--identify")] if args.identify else [])
        for m, identify in runs:
            out = folder / f"ours-{len(rows)}.json"
            cmd = [sys.executable, "-m", "sitewatch.cli.main", "-q", "detect", str(mosaic), "--json", "-o", str(out), "--score", str(AP_FLOOR),
                   "--model", str(m), "--batch-size", str(args.batch), identify]  # fmt: skip
            wall, rss = timed(cmd)
            dets = [Detection.from_dict(d) for d in json.loads(out.read_text())]
            rows.append(
                (f"sitewatch detect {identify} + {m.name}", wall, rss, *score(truth, dets, thresholds))
            )
    base = rows[0]
    print(f"{'run':<48} {'wall s':>8} {'peak MiB':>9} {'AP50':>6} {'count':>6}   vs SAHI: time  memory  AP50")
    for name, wall, rss, ap50, n in rows:
        print(
            f"{name:<48} {wall:8.1f} {rss:9.0f} {ap50:6.3f} {n:6d}   {wall / base[1]:12.2f} {rss / base[2]:7.2f} {ap50 - base[3]:+6.3f}"
        )
    print(f"labelled aircraft: {n_true}; AP50 on axis-aligned envelopes; detections at score >= {AP_FLOOR}")
    if args.sets:
        print()
        compare_sets(args.data, models, args.batch)


if __name__ == "__main__":
    main()
