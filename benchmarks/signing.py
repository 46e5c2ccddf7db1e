"""What signing and verifying a model cost: time and bytes read, for a ModelPack model in an ``oci:`` layout.

Usage: python benchmarks/signing.py [--size-mib 512] [--dir DIR] [--markdown]

Measured (one weight file of ``--size-mib`` random bytes plus a small config file):

* ``sign``                — ``modelhaul sign`` (export to scratch, model_signing hashes the files,
  two referrers written);
* ``verify (modelhaul)``  — ``modelhaul verify``: the signed statement compared with the layer
  digests, blob bytes checked through the digest cache (no second hash of an unchanged blob);
* ``verify (model_signing on an export)`` — the OpenSSF reader on an exported directory, which
  hashes every file again: the yardstick.

Bytes read are ``rchar`` from ``/proc/self/io`` around each call (every byte returned by read(2)).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

MIB = 1 << 20


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/io has no rchar")


def measure(fn) -> tuple[float, int]:
    r0, t0 = rchar(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, rchar() - r0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--dir")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from model_signing import verifying

    from modelhaul import artifacts, referrers, signing
    from modelhaul.reference import parse

    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        d = Path(d)
        os.environ["MODELHAUL_HOME"] = str(d / "home")
        model = d / "model"
        model.mkdir()
        with open(model / "model.safetensors", "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(MIB))
        (model / "config.json").write_text("{}")
        key = ec.generate_private_key(ec.SECP256R1())
        (d / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
        (d / "k.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo))
        ref = artifacts.publish(model, f"oci:{d}/layout:v1")["ref"]
        rows = {}
        rows["sign"] = measure(lambda: signing.sign_model(ref, str(d / "k.pem")))
        rows["verify (modelhaul)"] = measure(lambda: signing.verify_model(ref, str(d / "k.pub")))
        artifacts.fetch(ref, d / "export")
        target = artifacts.open_target(parse(ref))
        (desc,) = referrers.find(target, parse(ref).digest, signing.BUNDLE_TYPE)
        (d / "model.sig").write_bytes(referrers.read_layer(target, desc["digest"], parse(ref).digest)[1])
        cfg = verifying.Config().use_elliptic_key_verifier(public_key=d / "k.pub")
        rows["verify (model_signing on an export)"] = measure(lambda: cfg.verify(d / "export" / "model",
                                                                                 d / "model.sig"))
    if args.markdown:
        print(f"| what ({args.size_mib} MiB model) | seconds | MiB read |\n|---|---|---|")
        for k, (t, n) in rows.items():
            print(f"| {k} | {t:.2f} | {n / MIB:.1f} |")
    else:
        print(json.dumps({k: {"seconds": round(t, 3), "mib_read": round(n / MIB, 1)} for k, (t, n) in rows.items()},
                         indent=2))


if __name__ == "__main__":
    main()
