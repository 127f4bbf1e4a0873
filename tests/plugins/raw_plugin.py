"""A plugin on the bare protocol, Python standard library only (no numpy, no
ticketbench_plugin): what a plugin in any language does. `python3 raw_plugin.py <mode>`.

ok           keep the first `kept` weights in flat order (a valid mask), log the seed, the
             job's threads, OMP_NUM_THREADS and the rows of the data files it was handed
scores       answer scores only (score = flat index), keep the lowest: the same mask as ok
exit         exit with status 3 before reading anything
crash        read the request, print to stderr, die with status 7
hang         read the request and never answer
orphan       start a child process that sleeps (its pid on stderr), then never answer
twice        answer like ok, but print the answer line twice (out of step with ticketbench)
garbage      print a line that is not JSON on stdout
error        answer {"status": "error"}
shape        a mask whose first layer is transposed
count        a mask keeping one weight too many
nonbinary    a mask with a 2 in it
nan          scores with a NaN
missing      answer ok without writing any file
badlog       a valid mask and a log.json that is not JSON
"""

import json
import os
import struct
import sys
import time

MODE = sys.argv[1]


def save(path, tensors):
    """Writes a safetensors file: {name: (dtype, shape, bytes)}."""
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def rows(path, name):
    """The first dimension of tensor `name` in a safetensors file (its header only)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(length))[name]["shape"][0]


def size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def answer(req, d):
    layers = [l["shape"] for l in req["layers"]]
    kept = req["kept"]
    files = {k: os.path.join(d, v) for k, v in req["answer"].items()}
    if MODE in ("ok", "twice", "shape", "count", "nonbinary", "badlog"):
        left = kept + (1 if MODE == "count" else 0)
        masks = {}
        for l, shape in enumerate(layers):
            n = size(shape)
            take = min(left, n)
            left -= take
            values = [1] * take + [0] * (n - take)
            if MODE == "nonbinary" and l == 0:
                values[0] = 2
            if MODE == "shape" and l == 0:
                shape = list(reversed(shape))
            masks[f"layers.{l}.mask"] = ("U8", shape, bytes(values))
        save(files["mask"], masks)
        with open(files["log"], "w") as f:
            events = {"seen_seed": req["seed"] % 1000, "threads": req["job"]["threads"]}
            events["omp_threads"] = int(os.environ.get("OMP_NUM_THREADS", "-1"))
            for name, path in req["files"].items():
                if name in ("scoring", "train"):
                    events[f"{name}_rows"] = rows(path, f"{name}.x")
            f.write("{not json" if MODE == "badlog" else json.dumps({"events": events}))
        return {"status": "ok"}
    if MODE in ("scores", "nan"):
        scores, offset = {}, 0
        for l, shape in enumerate(layers):
            n = size(shape)
            values = [float(offset + i) for i in range(n)]
            if MODE == "nan" and l == 1:
                values[3] = float("nan")
            offset += n
            scores[f"layers.{l}.scores"] = ("F64", shape, struct.pack(f"<{n}d", *values))
        save(files["scores"], scores)
        return {"status": "ok", "keep": "lowest"}
    if MODE == "missing":
        return {"status": "ok"}
    if MODE == "error":
        return {"status": "error", "message": "this method does not like the request"}
    raise SystemExit(f"unknown mode {MODE}")


if MODE == "exit":
    print("refusing to start", file=sys.stderr)
    sys.exit(3)
for line in sys.stdin:
    message = json.loads(line)
    d = message["request"]
    with open(os.path.join(d, "request.json")) as f:
        req = json.load(f)
    if MODE == "crash":
        print("about to crash on", req["job"]["settings_hash"], file=sys.stderr, flush=True)
        os._exit(7)
    if MODE == "orphan":
        import subprocess

        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        print(f"child pid {child.pid}", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    if MODE == "hang":
        print("thinking forever", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    if MODE == "garbage":
        print("hello from the plugin", flush=True)
        continue
    line = json.dumps(answer(req, d))
    print(line, flush=True)
    if MODE == "twice":
        print(line, flush=True)
