"""Lighter copies of the FR3's visual meshes, for fast offscreen rendering on the CPU.

franky-sim's visual meshes carry ~240k triangles; at 128x128 pixels MuJoCo's software renderer
spends almost all its time transforming them (about 17 of 19 ms per frame). Vertex clustering on
a few-millimetre grid keeps the silhouette and colours at camera resolution with a tenth of the
triangles. Decimated OBJ files are cached per user (they take a second to make, once).
Collision meshes are untouched, so physics is the same.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

CELL_M = 0.004  # clustering grid; well below a pixel at the cameras' distances


def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "code2act" / "meshes"


def read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) and triangles (M, 3) of an OBJ file (polygons fanned, other records ignored)."""
    verts, faces = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("v "):
                verts.append([float(v) for v in line.split()[1:4]])
            elif line.startswith("f "):
                idx = [int(tok.split("/")[0]) for tok in line.split()[1:]]
                idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
                faces.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))
    return np.asarray(verts, float).reshape(-1, 3), np.asarray(faces, int).reshape(-1, 3)


def cluster_decimate(verts: np.ndarray, faces: np.ndarray, cell: float) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices sharing a grid cell; drop triangles that collapse or repeat."""
    if len(verts) == 0 or len(faces) == 0:
        return verts, faces
    keys = np.floor(verts / cell).astype(np.int64)
    _, cluster, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    cluster = cluster.reshape(-1)
    sums = np.zeros((len(counts), 3))
    np.add.at(sums, cluster, verts)
    new_verts = sums / counts[:, None]
    f = cluster[faces]
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    f = f[keep]
    _, first = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
    f = f[np.sort(first)]
    used = np.unique(f)
    remap = np.full(len(new_verts), -1)
    remap[used] = np.arange(len(used))
    return new_verts[used], remap[f]


def write_obj(path: Path, verts: np.ndarray, faces: np.ndarray) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # processes starting together each write their own
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("# decimated by code2act (vertex clustering) from franky-sim's FR3 mesh (Apache-2.0)\n")
        f.writelines(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in verts)
        f.writelines(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in faces)
    os.replace(tmp, path)


def decimated_obj(source: Path, cell: float = CELL_M) -> Path:
    """Path of the decimated copy of an OBJ mesh, made on first use."""
    stat = source.stat()
    tag = hashlib.sha1(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{cell}".encode()).hexdigest()[:12]
    out = cache_dir() / f"{source.stem}-{tag}.obj"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        verts, faces = read_obj(source)
        v, f = cluster_decimate(verts, faces, cell)
        if len(f) < 4:  # a tiny part that clustering would erase: keep it as it is
            v, f = verts, faces
        write_obj(out, v, f)
    return out


def use_light_visual_meshes(scene, meshdir: Path) -> None:
    """Point every visual-only (OBJ) mesh asset of a franky-sim scene tree at its decimated copy.

    Meshes that collision geoms also use (the fingers) keep their full detail.
    """
    collides = {g.get("mesh") for g in scene.iter("geom") if g.get("class") == "collision" and g.get("mesh")}
    asset = scene.find("asset")
    for mesh in asset.findall("mesh"):
        file = mesh.get("file", "")
        if file.endswith("_vis.obj") and mesh.get("name") not in collides:
            mesh.set("file", str(decimated_obj(meshdir / file)))
