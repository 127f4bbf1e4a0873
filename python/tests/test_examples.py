"""Tests of the example plugins in python/examples/ (numpy; the torch parts skip without torch).

Run: python -m unittest discover -s python/tests -v

(a) mlp.gradients against central finite differences of the loss;
(b) mlp.hvp (the R-operator) against central finite differences of the gradient, and GraSP's
    half-batch Hg against finite differences of Σ_h ∇_W L(B_h);
(c) one SynFlow pass: S = |θ| ⊙ ∂R/∂|θ| by finite differences, the methods.md worked example,
    layerwise conservation, and the iterative schedule;
(d) Request.top_k (ties to the lower flat index, exactly kept) on a request directory written
    here, and the plugins end to end through serve() in a subprocess;
(e) with torch: the numpy and torch plugins' scores agree to 1e-9 (relative) and give the same
    masks, for magnitude, SNIP, GraSP and SynFlow.
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

HERE = Path(__file__).resolve().parent
PYTHON_DIR = HERE.parent
EXAMPLES = PYTHON_DIR / "examples"
for p in (str(PYTHON_DIR), str(EXAMPLES)):
    if p not in sys.path:
        sys.path.insert(0, p)

import floor  # noqa: E402
import grasp  # noqa: E402
import magnitude  # noqa: E402
import mlp  # noqa: E402
import snip  # noqa: E402
import synflow  # noqa: E402
from ticketbench_plugin import Request  # noqa: E402

try:
    import torch  # noqa: F401

    import torch_grasp
    import torch_magnitude
    import torch_snip
    import torch_synflow

    HAVE_TORCH = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_TORCH = False

WIDTHS = [5, 7, 6, 3]


def make_net(seed=0, widths=WIDTHS, bias=(True, False, True), dtype=np.float64):
    """A small random MLP: weights [out, in], biases (layer 1 without one, to cover None)."""
    rng = np.random.default_rng(seed)
    ws, bs = [], []
    for l in range(len(widths) - 1):
        fan_in, fan_out = widths[l], widths[l + 1]
        ws.append((rng.standard_normal((fan_out, fan_in)) / np.sqrt(fan_in)).astype(dtype))
        bs.append((0.1 * rng.standard_normal(fan_out)).astype(dtype) if bias[l] else None)
    return ws, bs


def make_batch(seed=1, n=8, inputs=WIDTHS[0], classes=WIDTHS[-1]):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, inputs))
    y = rng.integers(0, classes, size=n).astype(np.int64)
    return x, y


def rel_err(a, b):
    """||a − b|| / max(||a||, ||b||) over lists of arrays (None entries skipped)."""
    pairs = [(np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)) for u, v in zip(a, b) if u is not None]
    num = np.sqrt(sum(float(np.sum((u - v) ** 2)) for u, v in pairs))
    den = max(np.sqrt(sum(float(np.sum(u * u)) for u, _ in pairs)), np.sqrt(sum(float(np.sum(v * v)) for _, v in pairs)))
    return num / den if den > 0 else num


def max_rel_diff(a, b):
    """max |a − b| / max |a| over lists of arrays or tensors (the agreement measure reported)."""
    a = [np.asarray(mlp_np(u), dtype=np.float64) for u in a]
    b = [np.asarray(mlp_np(v), dtype=np.float64) for v in b]
    scale = max(float(np.max(np.abs(u))) for u in a)
    return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b)) / scale


def mlp_np(t):
    return t.detach().cpu().numpy() if hasattr(t, "detach") else t


def params_of(ws, bs):
    """The parameters as a list of arrays (weights then the biases that exist)."""
    return list(ws) + [b for b in bs if b is not None]


def perturbed(ws, bs, which, index, eps):
    """Copies of (ws, bs) with parameter ``which`` (index into params_of) moved by eps at index."""
    ws2 = [w.copy() for w in ws]
    bs2 = [None if b is None else b.copy() for b in bs]
    if which < len(ws2):
        ws2[which][index] += eps
    else:
        present = [l for l, b in enumerate(bs2) if b is not None]
        bs2[present[which - len(ws2)]][index] += eps
    return ws2, bs2


class GradientTest(unittest.TestCase):
    """(a) mlp.gradients against central finite differences."""

    def check(self, kind, temperature, y=None):
        ws, bs = make_net()
        x, labels = make_batch()
        if y is None:
            y = labels
        _, dws, dbs = mlp.gradients(ws, bs, x, y, kind, temperature)
        analytic = params_of(dws, dbs)
        eps = 1e-6
        numeric = []
        for which, p in enumerate(params_of(ws, bs)):
            fd = np.zeros_like(p)
            for index in np.ndindex(p.shape):
                up = mlp.loss(*perturbed(ws, bs, which, index, eps), x, y, kind, temperature)
                down = mlp.loss(*perturbed(ws, bs, which, index, -eps), x, y, kind, temperature)
                fd[index] = (up - down) / (2 * eps)
            numeric.append(fd)
        err = rel_err(analytic, numeric)
        self.assertLess(err, 1e-6, f"{kind} T={temperature}: relative error {err:.3e}")
        self.assertIsNone(dbs[1])  # the layer without a bias has no bias gradient

    def test_cross_entropy(self):
        self.check("classification", 1.0)

    def test_cross_entropy_temperature(self):
        self.check("classification", 200.0)

    def test_mse(self):
        rng = np.random.default_rng(5)
        self.check("regression", 1.0, y=rng.standard_normal((8, WIDTHS[-1])))

    def test_loss_matches_definition(self):
        ws, bs = make_net()
        x, y = make_batch()
        logits = np.maximum(np.maximum(x @ ws[0].T + bs[0], 0) @ ws[1].T, 0) @ ws[2].T + bs[2]
        s = logits / 200.0
        p = np.exp(s) / np.exp(s).sum(axis=1, keepdims=True)
        expected = -np.mean(np.log(p[np.arange(len(y)), y]))
        self.assertAlmostEqual(mlp.loss(ws, bs, x, y, "classification", 200.0), expected, places=13)


class HessianVectorTest(unittest.TestCase):
    """(b) mlp.hvp against central finite differences of the gradient."""

    def fd_hvp(self, ws, bs, x, y, vw, vb, kind, temperature, eps=1e-5):
        def grad_at(sign):
            ws2 = [w + sign * eps * v for w, v in zip(ws, vw)]
            bs2 = [None if b is None else b + sign * eps * (0.0 if c is None else c) for b, c in zip(bs, vb)]
            _, dws, dbs = mlp.gradients(ws2, bs2, x, y, kind, temperature)
            return dws, dbs

        (uw, ub), (dw, db) = grad_at(1.0), grad_at(-1.0)
        hw = [(a - b) / (2 * eps) for a, b in zip(uw, dw)]
        hb = [None if a is None else (a - b) / (2 * eps) for a, b in zip(ub, db)]
        return hw, hb

    def check(self, kind, temperature, zero_bias_direction, y=None):
        ws, bs = make_net()
        x, labels = make_batch()
        if y is None:
            y = labels
        rng = np.random.default_rng(7)
        vw = [rng.standard_normal(w.shape) for w in ws]
        vb = [None if (b is None or zero_bias_direction) else rng.standard_normal(b.shape) for b in bs]
        hw, hb = mlp.hvp(ws, bs, x, y, vw, vb, kind, temperature)
        fw, fb = self.fd_hvp(ws, bs, x, y, vw, vb, kind, temperature)
        err = rel_err(params_of(hw, hb), params_of(fw, fb))
        self.assertLess(err, 1e-5, f"{kind} T={temperature}: relative error {err:.3e}")

    def test_cross_entropy(self):
        self.check("classification", 1.0, zero_bias_direction=False)

    def test_cross_entropy_temperature_weights_only_direction(self):
        self.check("classification", 200.0, zero_bias_direction=True)

    def test_mse(self):
        rng = np.random.default_rng(5)
        self.check("regression", 1.0, zero_bias_direction=False, y=rng.standard_normal((8, WIDTHS[-1])))

    def test_symmetric(self):
        ws, bs = make_net()
        x, y = make_batch()
        rng = np.random.default_rng(3)
        u = [rng.standard_normal(w.shape) for w in ws]
        v = [rng.standard_normal(w.shape) for w in ws]
        hu, _ = mlp.hvp(ws, bs, x, y, u)
        hv, _ = mlp.hvp(ws, bs, x, y, v)
        a = sum(float(np.sum(p * q)) for p, q in zip(v, hu))
        b = sum(float(np.sum(p * q)) for p, q in zip(u, hv))
        self.assertAlmostEqual(a, b, delta=1e-12 * max(abs(a), 1.0))

    def test_grasp_hg_finite_differences(self):
        # Hg = Σ_h H_h (g, 0) = d/dε Σ_h ∇_W L(B_h)(W + ε g) at ε = 0, biases fixed.
        ws, bs = make_net()
        x, y = make_batch(n=9)  # odd N: halves of 4 and 5 rows
        g, hg = grasp.grasp_hg(ws, bs, x, y, "classification", 200.0)

        def summed_grad(sign, eps=1e-4):
            ws2 = [w + sign * eps * d for w, d in zip(ws, g)]
            out = None
            for xb, yb in ((x[:4], y[:4]), (x[4:], y[4:])):
                _, dws, _ = mlp.gradients(ws2, bs, xb, yb, "classification", 200.0)
                out = dws if out is None else [p + q for p, q in zip(out, dws)]
            return out

        fd = [(p - q) / 2e-4 for p, q in zip(summed_grad(1.0), summed_grad(-1.0))]
        self.assertLess(rel_err(hg, fd), 1e-5)
        # and g itself is the half-batch sum
        self.assertLess(rel_err(g, summed_grad(0.0)), 1e-14)

    def test_grasp_scores_normalised(self):
        ws, bs = make_net()
        x, y = make_batch()
        s = grasp.grasp_scores(ws, bs, x, y)
        _, hg = grasp.grasp_hg(ws, bs, x, y)
        raw = [-w * h for w, h in zip(ws, hg)]
        total = sum(float(a.sum()) for a in raw)
        for a, b in zip(s, raw):
            np.testing.assert_allclose(a, b / (abs(total) + 1e-10), rtol=1e-14, atol=0)
        # |Σ S| is 1 up to the 1e-10 guard (small here: T = 200 makes Hg of order 1/T²)
        self.assertAlmostEqual(abs(sum(float(a.sum()) for a in s)), abs(total) / (abs(total) + 1e-10), places=12)


class SynflowTest(unittest.TestCase):
    """(c) one SynFlow pass and the iterative schedule."""

    def test_worked_example(self):
        # methods.md §1.6(e): W1 = [[1, -2], [3, 0.25]], W2 = [[-1, 4]], no biases.
        ws = [np.array([[1.0, -2.0], [3.0, 0.25]]), np.array([[-1.0, 4.0]])]
        s, r = mlp.synflow_scores(ws, [None, None])
        np.testing.assert_array_equal(s[0], [[1.0, 2.0], [12.0, 1.0]])
        np.testing.assert_array_equal(s[1], [[3.0, 13.0]])
        self.assertEqual(r, 16.0)

    def test_finite_differences(self):
        ws, bs = make_net(seed=4)
        rng = np.random.default_rng(9)
        masks = [rng.random(w.shape) < 0.7 for w in ws]
        s, r = mlp.synflow_scores(ws, bs, masks)

        def flow(aw):  # R as a function of the effective |θ| ⊙ m (biases |b| fixed)
            return mlp.synflow_scores(aw, bs)[1]

        eff = [np.abs(w) * m for w, m in zip(ws, masks)]
        eps = 1e-6
        for l, a in enumerate(eff):
            fd = np.zeros_like(a)
            for index in np.ndindex(a.shape):
                up = [e.copy() for e in eff]
                down = [e.copy() for e in eff]
                up[l][index] += eps
                down[l][index] = abs(down[l][index] - eps)  # stays nonnegative (|·| inside)
                if eff[l][index] < eps:  # one-sided at 0: R is linear in each weight
                    fd[index] = (flow(up) - r) / eps
                else:
                    fd[index] = (flow(up) - flow(down)) / (2 * eps)
            expected = a * fd
            np.testing.assert_allclose(s[l], expected, rtol=1e-6, atol=1e-9 * r)
            self.assertTrue(np.all(s[l][~masks[l]] == 0.0))

    def test_conservation_without_biases(self):
        ws, _ = make_net(seed=2)
        s, r = mlp.synflow_scores(ws, [None] * len(ws))
        for layer in s:
            self.assertAlmostEqual(float(layer.sum()) / r, 1.0, places=12)

    def test_schedule(self):
        counts = synflow.round_counts(0.01, 1000, 10, 100)
        self.assertEqual(len(counts), 100)
        self.assertEqual(counts[0], int(np.floor(0.01 ** 0.01 * 1000 + 0.5)))  # 955
        self.assertEqual(counts[49], 100)  # D^(1/2) = 0.1
        self.assertEqual(counts[-1], 10)
        self.assertTrue(all(a >= b for a, b in zip(counts, counts[1:])))
        lin = synflow.round_counts(0.5, 100, 50, 4, "linear")
        self.assertEqual(lin, [88, 75, 63, 50])

    def test_iterative_masks(self):
        ws, bs = make_net(seed=6, dtype=np.float32)
        total = sum(w.size for w in ws)
        kept = 9
        masks, scores = synflow.synflow_prune(ws, bs, kept / total, kept, rounds=20)
        self.assertEqual(sum(int(m.sum()) for m in masks), kept)
        for m, s in zip(masks, scores):
            self.assertEqual(m.shape, s.shape)
            self.assertTrue(np.all(s >= 0))
        # rounds = 1 is one-shot SynFlow: the plain top-k of the dense scores
        one, s1 = synflow.synflow_prune(ws, bs, kept / total, kept, rounds=1)
        dense, _ = mlp.synflow_scores(ws, bs)
        for a, b in zip(one, mlp.top_k_among(dense, kept)):
            np.testing.assert_array_equal(a, b)

    def test_pruned_stay_pruned(self):
        ws, bs = make_net(seed=8)
        masks = [np.ones(w.shape, dtype=bool) for w in ws]
        for k in synflow.round_counts(0.1, sum(w.size for w in ws), 10, 10):
            s, _ = mlp.synflow_scores(ws, bs, masks)
            new = mlp.top_k_among(s, k, candidates=masks)
            for a, b in zip(new, masks):
                self.assertFalse(np.any(a & ~b))
            masks = new
            self.assertEqual(sum(int(m.sum()) for m in masks), k)


def write_request(root, ws, bs, kept, params=None, data="none", x=None, y=None, kind="classification"):
    """A ticketbench request directory (request.json, theta0.safetensors, maybe scoring)."""
    root = Path(root)
    tensors = {}
    for l, (w, b) in enumerate(zip(ws, bs)):
        tensors[f"layers.{l}.weight"] = np.ascontiguousarray(w, dtype=np.float32)
        if b is not None:
            tensors[f"layers.{l}.bias"] = np.ascontiguousarray(b, dtype=np.float32)
    save_file(tensors, str(root / "theta0.safetensors"))
    files = {"theta0": str(root / "theta0.safetensors")}
    if x is not None:
        save_file(
            {"scoring.x": np.ascontiguousarray(x, dtype=np.float32), "scoring.y": np.ascontiguousarray(y)},
            str(root / "scoring.safetensors"),
        )
        files["scoring"] = str(root / "scoring.safetensors")
    total = sum(int(np.asarray(w).size) for w in ws)
    meta = {
        "protocol": 1,
        "density": kept / total,
        "kept": kept,
        "total": total,
        "layers": [{"kind": "linear", "shape": list(w.shape), "bias": b is not None} for w, b in zip(ws, bs)],
        "activation": "relu",
        "method": {"label": "test", "command": "python3 x.py", "params": params or {}},
        "seed": 1234,
        "task": {"name": "t", "label": "t", "kind": kind, "inputs": ws[0].shape[1], "outputs": ws[-1].shape[0]},
        "data": data,
        "train": {},
        "job": {"check": None, "threads": 1},
        "files": files,
        "answer": {
            "mask": "mask.safetensors",
            "scores": "scores.safetensors",
            "start": "start.safetensors",
            "log": "log.json",
        },
    }
    with open(root / "request.json", "w") as f:
        json.dump(meta, f)
    return root


class TopKTest(unittest.TestCase):
    """(d) Request.top_k and mlp.top_k_among: exact k, ties to the lower flat index."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.ws = [np.zeros((2, 3)), np.zeros((1, 2))]
        self.bs = [np.zeros(2), None]

    def tearDown(self):
        self.tmp.cleanup()

    def request(self, kept):
        return Request(write_request(self.tmp.name, self.ws, self.bs, kept))

    def test_ties_to_lower_flat_index(self):
        req = self.request(3)
        self.assertEqual(req.total, 8)
        self.assertIsNone(req.biases[1])
        scores = [np.array([[1.0, 2.0, 2.0], [0.5, 2.0, 1.0]]), np.array([[2.0, 1.0]])]
        # flat: [1, 2, 2, .5, 2, 1 | 2, 1]; the 2s at flat 1, 2, 4, 6: keep 1, 2, 4.
        answer = req.top_k(scores)
        mask = np.concatenate([np.asarray(m).ravel() for m in answer.mask])
        np.testing.assert_array_equal(np.flatnonzero(mask), [1, 2, 4])
        self.assertEqual(int(mask.sum()), req.kept)
        # lowest: the 0.5 (flat 3), then the 1s at flat 0, 5, 7: keep 3, 0, 5
        answer = req.top_k(scores, keep="lowest")
        mask = np.concatenate([np.asarray(m).ravel() for m in answer.mask])
        np.testing.assert_array_equal(np.flatnonzero(mask), [0, 3, 5])
        self.assertEqual(answer.keep, "lowest")

    def test_all_equal_scores(self):
        req = self.request(5)
        answer = req.top_k([np.ones((2, 3)), np.ones((1, 2))])
        mask = np.concatenate([np.asarray(m).ravel() for m in answer.mask])
        np.testing.assert_array_equal(np.flatnonzero(mask), [0, 1, 2, 3, 4])

    def test_top_k_among_matches_request(self):
        rng = np.random.default_rng(0)
        req = self.request(4)
        scores = [rng.integers(0, 3, size=(2, 3)).astype(float), rng.integers(0, 3, size=(1, 2)).astype(float)]
        for keep in ("highest", "lowest"):
            a = req.top_k(scores, keep=keep).mask
            b = mlp.top_k_among(scores, 4, keep=keep)
            for u, v in zip(a, b):
                np.testing.assert_array_equal(u, v)

    def test_linear_time_selection_equals_a_stable_sort(self):
        from ticketbench_plugin import _top

        rng = np.random.default_rng(3)
        for trial in range(200):
            n = int(rng.integers(1, 60))
            flat = rng.integers(-3, 4, size=n).astype(float)  # many ties
            flat[rng.random(n) < 0.1] = -0.0
            k = int(rng.integers(0, n + 1))
            for keep in ("highest", "lowest"):
                order = np.argsort(-flat if keep == "highest" else flat, kind="stable")
                want = np.zeros(n, dtype=bool)
                want[order[:k]] = True
                np.testing.assert_array_equal(_top(flat, k, keep), want, f"trial {trial} {keep} k={k}")

    def test_counts_outside_a_layer_are_refused(self):
        from ticketbench_plugin import ProtocolError

        req = self.request(3)
        with self.assertRaises(ProtocolError):
            req.top_k([np.ones((2, 3)), np.ones((1, 2))], counts=[4, -1])

    def test_logs_carry_non_finite_numbers_as_strings(self):
        from ticketbench_plugin import _json_safe

        log = {"rounds": [{"round": 1, "test_loss": float("nan"), "test_acc": np.float32(0.5)}],
               "events": {"up": np.inf, "n": np.int64(3)}}
        text = json.dumps(_json_safe(log), allow_nan=False)
        self.assertEqual(json.loads(text), {"rounds": [{"round": 1.0, "test_loss": "NaN", "test_acc": 0.5}],
                                            "events": {"up": "inf", "n": 3.0}})

    def test_floor_keeps_the_first_kept_weights_in_flat_order(self):
        req = self.request(4)
        mask = np.concatenate([np.asarray(m).ravel() for m in floor.prune(req).mask])
        np.testing.assert_array_equal(np.flatnonzero(mask), [0, 1, 2, 3])
        self.assertEqual(floor.prune(req).mask[1].shape, (1, 2))

    def test_top_k_among_candidates(self):
        scores = [np.array([[0.0, 0.0, 3.0], [0.0, 1.0, 0.0]]), np.array([[0.0, 0.0]])]
        cand = [np.array([[False, True, True], [False, True, True]]), np.array([[True, False]])]
        # candidates at flat 1, 2, 4, 5, 6 with scores 0, 3, 1, 0, 0: keep 2, 4, then 1 (a tie
        # with 5 and 6 at 0) -- never the non-candidate 0 at flat 0.
        masks = mlp.top_k_among(scores, 3, candidates=cand)
        np.testing.assert_array_equal(np.flatnonzero(np.concatenate([m.ravel() for m in masks])), [1, 2, 4])


def run_plugin(script, request_dir, timeout=120):
    """Runs one example plugin through serve() on one request; returns its reply."""
    line = json.dumps({"protocol": 1, "request": str(request_dir)}) + "\n"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        input=line,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(PYTHON_DIR),
    )
    if proc.returncode != 0:
        raise AssertionError(f"{script} exited {proc.returncode}: {proc.stderr}")
    replies = [json.loads(l) for l in proc.stdout.splitlines() if l.strip()]
    if len(replies) != 1:
        raise AssertionError(f"{script} answered {proc.stdout!r} (stderr {proc.stderr})")
    return replies[0]


class EndToEndTest(unittest.TestCase):
    """(d) the plugins through serve(): one JSON line in, the answer files and line out."""

    SCRIPTS = [
        ("magnitude.py", "none", {}),
        ("snip.py", "scoring-batch", {}),
        ("grasp.py", "scoring-batch", {"temperature": 200}),
        ("synflow.py", "none", {"rounds": 10}),
    ]
    TORCH_SCRIPTS = [("torch_" + s, d, p) for s, d, p in SCRIPTS]

    def run_scripts(self, scripts):
        ws, bs = make_net(seed=11, dtype=np.float32)
        x, y = make_batch(seed=12, n=12)
        total = sum(w.size for w in ws)
        kept = 20
        for script, data, params in scripts:
            with self.subTest(script=script), tempfile.TemporaryDirectory() as tmp:
                write_request(tmp, ws, bs, kept, params, data, x, y)
                reply = run_plugin(script, tmp)
                self.assertEqual(reply["status"], "ok", reply)
                expected_keep = "lowest" if "grasp" in script else "highest"
                self.assertEqual(reply["keep"], expected_keep)
                mask = load_file(os.path.join(tmp, "mask.safetensors"))
                scores = load_file(os.path.join(tmp, "scores.safetensors"))
                self.assertEqual(sum(int(m.sum()) for m in mask.values()), kept)
                self.assertEqual(sum(s.size for s in scores.values()), total)
                for l, w in enumerate(ws):
                    self.assertEqual(mask[f"layers.{l}.mask"].shape, w.shape)
                    self.assertEqual(scores[f"layers.{l}.scores"].dtype, np.float64)

    def test_numpy_plugins(self):
        self.run_scripts(self.SCRIPTS)

    @unittest.skipUnless(HAVE_TORCH, "torch is not installed: torch plugins not run")
    def test_torch_plugins(self):
        self.run_scripts(self.TORCH_SCRIPTS)

    def test_error_keeps_serving(self):
        # a request without scoring data fails that job; the plugin answers the next one
        ws, bs = make_net(seed=11, dtype=np.float32)
        x, y = make_batch(seed=12, n=12)
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            write_request(a, ws, bs, 5, data="none")
            write_request(b, ws, bs, 5, data="scoring-batch", x=x, y=y)
            lines = "".join(json.dumps({"protocol": 1, "request": d}) + "\n" for d in (a, b))
            proc = subprocess.run(
                [sys.executable, str(EXAMPLES / "snip.py")],
                input=lines, capture_output=True, text=True, timeout=120, cwd=str(PYTHON_DIR),
            )
            replies = [json.loads(l) for l in proc.stdout.splitlines() if l.strip()]
            self.assertEqual([r["status"] for r in replies], ["error", "ok"], proc.stderr)
            self.assertIn("scoring-batch", replies[0]["message"])


@unittest.skipUnless(HAVE_TORCH, "torch is not installed: numpy/torch agreement not checked")
class TorchAgreementTest(unittest.TestCase):
    """(e) the numpy and the torch implementations agree (relative 1e-9) and pick the same masks."""

    TOL = 1e-9

    def setUp(self):
        self.ws, self.bs = make_net(seed=21, dtype=np.float32)
        self.x, self.y = make_batch(seed=22, n=8)

    def check(self, name, a, b):
        d = max_rel_diff(a, b)
        self.assertLess(d, self.TOL, f"{name}: max relative difference {d:.3e}")
        return d

    def same_masks(self, a, b):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(np.asarray(mlp_np(u), dtype=bool), np.asarray(mlp_np(v), dtype=bool))

    def test_magnitude(self):
        self.check("magnitude", magnitude.magnitude_scores(self.ws), torch_magnitude.magnitude_scores(self.ws))

    def test_snip(self):
        a = snip.snip_scores(self.ws, self.bs, self.x, self.y)
        b = torch_snip.snip_scores(self.ws, self.bs, self.x, self.y)
        self.check("snip", a, b)
        self.same_masks(mlp.top_k_among(a, 20), mlp.top_k_among([mlp_np(t) for t in b], 20))

    def test_grasp(self):
        g_np, hg_np = grasp.grasp_hg(self.ws, self.bs, self.x, self.y)
        g_t, hg_t = torch_grasp.grasp_hg(self.ws, self.bs, self.x, self.y)
        self.check("grasp g", g_np, g_t)
        self.check("grasp Hg", hg_np, hg_t)
        a = grasp.grasp_scores(self.ws, self.bs, self.x, self.y)
        b = torch_grasp.grasp_scores(self.ws, self.bs, self.x, self.y)
        self.check("grasp", a, b)
        self.same_masks(
            mlp.top_k_among(a, 20, keep="lowest"), mlp.top_k_among([mlp_np(t) for t in b], 20, keep="lowest")
        )

    def test_grasp_regression(self):
        y = np.random.default_rng(3).standard_normal((8, WIDTHS[-1]))
        a = grasp.grasp_scores(self.ws, self.bs, self.x, y, "regression")
        b = torch_grasp.grasp_scores(self.ws, self.bs, self.x, y, "regression")
        self.check("grasp regression", a, b)

    def test_synflow(self):
        masks = [np.random.default_rng(4).random(w.shape) < 0.6 for w in self.ws]
        a, ra = mlp.synflow_scores(self.ws, self.bs, masks)
        b, rb = torch_synflow.synflow_scores(self.ws, self.bs, [torch.as_tensor(m) for m in masks])
        self.check("synflow round", a, b)
        self.assertAlmostEqual(ra / rb, 1.0, places=12)
        total = sum(w.size for w in self.ws)
        ma, sa = synflow.synflow_prune(self.ws, self.bs, 12 / total, 12, rounds=100)
        mb, sb = torch_synflow.synflow_prune(self.ws, self.bs, 12 / total, 12, rounds=100)
        self.same_masks(ma, mb)
        self.check("synflow 100 rounds", sa, sb)


if __name__ == "__main__":
    unittest.main()
