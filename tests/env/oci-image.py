#!/usr/bin/env python3
"""Write OCI image archives without a registry, a daemon or root: python3 stdlib only.

The output is an OCI image layout in a tar (oci-layout, index.json, blobs/sha256/...), one
index entry per image reference, loadable with `ctr -n k8s.io images import ARCHIVE`
(tests/env/node.sh import DIR ARCHIVE) and runnable with `imagePullPolicy: Never` or
`IfNotPresent`. Layers are uncompressed tars (local use only: no time spent on gzip) and
reproducible: entries sorted by name, numeric owners only (no user/group names), every mtime
fixed (SOURCE_DATE_EPOCH, else 0). The same inputs give the same digests, so an archive can
be cached by a hash of its inputs and a re-import of an unchanged image can be skipped.

Usage
-----
  oci-image.py build OUT.tar SPEC.json
      Several images in one archive, sharing layers (a blob is stored once). SPEC.json:

      {
        "layers": {
          "base":  {"tar": "/cache/bookworm-base.tar"},         # a layer tar made earlier
          "tools": {"dir": "/tmp/rootfs-extra"},                # a directory tree, as "/"
          "app":   {"dir": "out/bin", "prefix": "/usr/local/bin", "owner": [0, 0]},
          "cfg":   {"files":    {"/etc/app/app.conf": "conf/app.conf",
                                 "/usr/local/bin/run": {"source": "run.sh", "mode": "0755"}},
                    "dirs":     {"/var/lib/app": {"mode": "0700", "owner": [999, 999]}},
                    "symlinks": {"/bin/sh": "busybox"}}
        },
        "images": [
          {"ref": "localhost/app:dev", "layers": ["base", "app", "cfg"],
           "config": {"Entrypoint": ["/usr/local/bin/run"], "Cmd": ["--serve"],
                      "Env": ["LANG=C.UTF-8"], "WorkingDir": "/var/lib/app",
                      "User": "999:999", "ExposedPorts": ["8080/tcp", "9090"],
                      "Labels": {"a": "b"}, "StopSignal": "SIGTERM"}},
          {"ref": "localhost/tools:dev", "layers": ["base", "tools"],
           "config": {"Cmd": ["/bin/bash"]}}
        ]
      }

      Relative paths in SPEC.json are relative to the spec file's directory. Layer kinds:
        dir       a directory tree, taken as the image's "/" (or as PREFIX with "prefix");
                  files keep their numeric owners unless "owner": [uid, gid] is given
                  (use it when the tree was made by a non-root user); hard links,
                  symlinks, devices, fifos and the xattrs security.capability and user.*
                  are kept; sockets are skipped; whiteout files (.wh.NAME) pass through
        tar       a layer tar made earlier (plain or gzip; stored uncompressed), e.g. by
                  `oci-image.py layer`: a big base layer is written once and shared
        files     {image path: host file, or {"source", "mode", "owner"}}; parent
                  directories are added (0755, root); plus optional "dirs" and "symlinks"
      Config keys (the OCI image config's "config"): Entrypoint, Cmd, Env, WorkingDir,
      User, ExposedPorts (a list, "80" meaning "80/tcp", or a dict), Volumes (a list),
      Labels, StopSignal. Env gets the usual PATH unless it sets PATH. An image may also
      set "architecture" and "os" (default: this machine's, linux).

  oci-image.py simple OUT.tar --ref NAME:TAG [--layer DIR_OR_TAR]... [--file IMG=HOST]...
                [--symlink IMG=TARGET]... [--entrypoint JSON] [--cmd JSON] [--env K=V]...
                [--workdir DIR] [--user U] [--expose PORT[/PROTO]]... [--label K=V]...
      One image: each --layer is a layer (a directory or a tar file); --file and --symlink
      entries make one more layer on top. --entrypoint/--cmd take a JSON list (or a plain
      string, a one-element list). Example, the pause image of tests/env/node.sh:
        oci-image.py simple pause.tar --ref localhost/pause:3.10 \\
            --file /pause=build/pause --entrypoint '["/pause"]'

  oci-image.py layer OUT.tar DIR [--prefix P] [--owner UID:GID]
      A reproducible layer tar of DIR, to pass later as {"tar": OUT.tar}.

  oci-image.py refs ARCHIVE.tar
      Print "REF MANIFEST_DIGEST" per image of an archive (cheap: reads index.json only).
      `node.sh import` compares these with the images containerd has, to skip re-imports.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import stat
import sys
import tarfile
import tempfile

MTIME = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
CREATED = "1970-01-01T00:00:00Z" if MTIME == 0 else None
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"
XATTR_KEEP = ("security.capability", "user.")
CHUNK = 1 << 20


def die(msg):
    print(f"oci-image.py: {msg}", file=sys.stderr)
    sys.exit(1)


def created():
    if CREATED:
        return CREATED
    import datetime

    return datetime.datetime.fromtimestamp(MTIME, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def machine_arch():
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x"}.get(m, m)


class HashingWriter:
    """A file object that hashes and counts what goes through it."""

    def __init__(self, f):
        self.f = f
        self.h = hashlib.sha256()
        self.size = 0

    def write(self, b):
        self.h.update(b)
        self.size += len(b)
        return self.f.write(b)

    def flush(self):
        self.f.flush()

    def digest(self):
        return "sha256:" + self.h.hexdigest()


def norm_path(p):
    """Image path -> tar member name: no leading '/', no '.' parts."""
    parts = [x for x in p.strip("/").split("/") if x not in ("", ".")]
    if any(x == ".." for x in parts):
        die(f"'..' in image path {p!r}")
    return "/".join(parts)


def parent_dirs(name):
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def fixed(ti, owner=None):
    ti.mtime = MTIME
    ti.uname = ""
    ti.gname = ""
    if owner is not None:
        ti.uid, ti.gid = owner
    return ti


def dir_info(name, mode=0o755, owner=(0, 0)):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = mode
    return fixed(ti, owner)


def add_xattrs(ti, path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return
    for n in sorted(names):
        if not n.startswith(XATTR_KEEP):
            continue
        try:
            v = os.getxattr(path, n, follow_symlinks=False)
        except OSError:
            continue
        # Binary values survive as surrogate escapes (tarfile writes them back as bytes).
        ti.pax_headers["SCHILY.xattr." + n] = v.decode("utf-8", "surrogateescape")


def write_dir_layer(tf, root, prefix="", owner=None):
    """Add the tree ROOT (as PREFIX) to tf, sorted, with fixed mtimes."""
    if not os.path.isdir(root):
        die(f"layer directory {root} does not exist")
    prefix = norm_path(prefix)
    if prefix:
        for d in parent_dirs(prefix + "/x"):
            tf.addfile(dir_info(d))
    seen_inodes = {}

    def add(path, name):
        st = os.lstat(path)
        if stat.S_ISSOCK(st.st_mode):
            return
        ti = tarfile.TarInfo(name)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.uid, ti.gid = st.st_uid, st.st_gid
        fixed(ti, owner)
        add_xattrs(ti, path)
        if stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in seen_inodes:
                ti.type = tarfile.LNKTYPE
                ti.linkname = seen_inodes[key]
                tf.addfile(ti)
                return
            seen_inodes[key] = name
            ti.type = tarfile.REGTYPE
            ti.size = st.st_size
            with open(path, "rb") as f:
                tf.addfile(ti, f)
        elif stat.S_ISDIR(st.st_mode):
            ti.type = tarfile.DIRTYPE
            tf.addfile(ti)
        elif stat.S_ISLNK(st.st_mode):
            ti.type = tarfile.SYMTYPE
            ti.linkname = os.readlink(path)
            tf.addfile(ti)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            ti.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            tf.addfile(ti)
        elif stat.S_ISFIFO(st.st_mode):
            ti.type = tarfile.FIFOTYPE
            tf.addfile(ti)

    def walk(dirpath, relname):
        for entry in sorted(os.listdir(dirpath)):
            path = os.path.join(dirpath, entry)
            name = f"{relname}/{entry}" if relname else entry
            add(path, name)
            if os.path.isdir(path) and not os.path.islink(path):
                walk(path, name)

    walk(root, prefix)


def write_files_layer(tf, spec, base):
    """The "files" / "dirs" / "symlinks" kind of layer."""
    entries = {}  # name -> (kind, data)
    for img, src in (spec.get("dirs") or {}).items():
        src = src or {}
        entries[norm_path(img)] = ("dir", src)
    for img, target in (spec.get("symlinks") or {}).items():
        entries[norm_path(img)] = ("symlink", target)
    for img, src in (spec.get("files") or {}).items():
        if isinstance(src, str):
            src = {"source": src}
        entries[norm_path(img)] = ("file", src)
    names = set(entries)
    for n in list(entries):
        for d in parent_dirs(n):
            if d not in names:
                entries[d] = ("dir", {})
                names.add(d)
    for name in sorted(entries):
        kind, data = entries[name]
        owner = tuple(data.get("owner", (0, 0))) if isinstance(data, dict) else (0, 0)
        if kind == "dir":
            tf.addfile(dir_info(name, int(str(data.get("mode", "0755")), 8), owner))
        elif kind == "symlink":
            ti = fixed(tarfile.TarInfo(name), (0, 0))
            ti.type = tarfile.SYMTYPE
            ti.linkname = data
            ti.mode = 0o777
            tf.addfile(ti)
        else:
            path = os.path.join(base, data["source"])
            st = os.stat(path)
            ti = fixed(tarfile.TarInfo(name), owner)
            ti.type = tarfile.REGTYPE
            ti.size = st.st_size
            ti.mode = int(str(data["mode"]), 8) if "mode" in data else stat.S_IMODE(st.st_mode)
            with open(path, "rb") as f:
                tf.addfile(ti, f)


class Blobs:
    """blobs/sha256 of the layout being written (in a temporary directory)."""

    def __init__(self, root):
        self.dir = os.path.join(root, "blobs", "sha256")
        os.makedirs(self.dir)

    def put_json(self, obj):
        b = json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()
        d = hashlib.sha256(b).hexdigest()
        with open(os.path.join(self.dir, d), "wb") as f:
            f.write(b)
        return {"digest": "sha256:" + d, "size": len(b)}

    def put_layer(self, write):
        """write(fileobj) writes an uncompressed layer tar; returns its descriptor."""
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".layer.")
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as raw:
            hw = HashingWriter(raw)
            write(hw)
        digest = hw.digest()
        final = os.path.join(self.dir, digest.split(":", 1)[1])
        if os.path.exists(final):
            os.unlink(tmp)
        else:
            os.rename(tmp, final)
        return {"digest": digest, "size": hw.size}


def tar_writer(fill):
    def write(out):
        # PAX: long names and xattrs; GNU-style size fields are not needed.
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            fill(tf)

    return write


def copy_tar(path):
    def write(out):
        with open(path, "rb") as f:
            magic = f.read(2)
            f.seek(0)
            src = gzip.GzipFile(fileobj=f) if magic == b"\x1f\x8b" else f
            while True:
                b = src.read(CHUNK)
                if not b:
                    break
                out.write(b)

    return write


def layer_writer(spec, base):
    if "tar" in spec:
        path = os.path.join(base, spec["tar"])
        if not os.path.isfile(path):
            die(f"layer tar {path} does not exist")
        return copy_tar(path)
    if "dir" in spec:
        owner = tuple(spec["owner"]) if spec.get("owner") is not None else None
        return tar_writer(lambda tf: write_dir_layer(
            tf, os.path.join(base, spec["dir"]), spec.get("prefix", ""), owner))
    if any(k in spec for k in ("files", "dirs", "symlinks")):
        return tar_writer(lambda tf: write_files_layer(tf, spec, base))
    die(f"a layer needs one of dir, tar, files: {spec!r}")


def image_config(cfg):
    out = {}
    for k in ("Entrypoint", "Cmd"):
        if cfg.get(k) is not None:
            v = cfg[k]
            out[k] = [v] if isinstance(v, str) else list(v)
    env = list(cfg.get("Env") or [])
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_PATH)
    out["Env"] = env
    for k in ("WorkingDir", "User", "StopSignal"):
        if cfg.get(k):
            out[k] = cfg[k]
    ports = cfg.get("ExposedPorts")
    if ports:
        if isinstance(ports, dict):
            ports = list(ports)
        out["ExposedPorts"] = {(str(p) if "/" in str(p) else f"{p}/tcp"): {} for p in ports}
    vols = cfg.get("Volumes")
    if vols:
        out["Volumes"] = {v: {} for v in (vols if isinstance(vols, list) else list(vols))}
    if cfg.get("Labels"):
        out["Labels"] = dict(cfg["Labels"])
    unknown = set(cfg) - {"Entrypoint", "Cmd", "Env", "WorkingDir", "User", "StopSignal",
                          "ExposedPorts", "Volumes", "Labels"}
    if unknown:
        die(f"unknown config keys {sorted(unknown)}")
    return out


def split_ref(ref):
    """'localhost/x:1' -> tag '1'; a ref must have a tag (no implicit :latest)."""
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag or not name:
        die(f"image reference {ref!r} needs a :TAG")
    return tag


def build(out, spec, base):
    layers = spec.get("layers") or {}
    images = spec.get("images") or []
    if not images:
        die("no images in the spec")
    refs = [img.get("ref") for img in images]
    if len(set(refs)) != len(refs):
        die(f"an image reference appears twice: {refs}")
    work = tempfile.mkdtemp(prefix=".oci-image.", dir=os.path.dirname(os.path.abspath(out)))
    try:
        blobs = Blobs(work)
        made = {}  # layer name -> descriptor
        manifests = []
        for img in images:
            ref = img["ref"]
            tag = split_ref(ref)
            descs = []
            for lname in img.get("layers") or []:
                if lname not in made:
                    if lname not in layers:
                        die(f"image {ref}: no layer named {lname!r}")
                    made[lname] = blobs.put_layer(layer_writer(layers[lname], base))
                descs.append(made[lname])
            history = [{"created": created(), "created_by": f"oci-image.py layer {n}"}
                       for n in img.get("layers") or []]
            config = {
                "created": created(),
                "architecture": img.get("architecture", machine_arch()),
                "os": img.get("os", "linux"),
                "config": image_config(img.get("config") or {}),
                "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]},
                "history": history,
            }
            cdesc = blobs.put_json(config)
            manifest = {
                "schemaVersion": 2,
                "mediaType": MT_MANIFEST,
                "config": {"mediaType": MT_CONFIG, **cdesc},
                "layers": [{"mediaType": MT_LAYER, **d} for d in descs],
            }
            mdesc = blobs.put_json(manifest)
            manifests.append({
                "mediaType": MT_MANIFEST, **mdesc,
                "platform": {"architecture": config["architecture"], "os": config["os"]},
                # containerd names the image after io.containerd.image.name; the OCI
                # ref.name annotation holds the tag.
                "annotations": {"io.containerd.image.name": ref,
                                "org.opencontainers.image.ref.name": tag},
            })
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": manifests}
        with open(os.path.join(work, "index.json"), "w") as f:
            json.dump(index, f, separators=(",", ":"), sort_keys=True)
        with open(os.path.join(work, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')
        tmp_out = out + ".tmp"
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tf:
            write_dir_layer(tf, work, "", (0, 0))
        os.replace(tmp_out, out)
        for m in manifests:
            print(f"{m['annotations']['io.containerd.image.name']} {m['digest']}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def archive_refs(path):
    with tarfile.open(path, "r:") as tf:
        try:
            f = tf.extractfile("index.json")
        except KeyError:
            die(f"{path}: no index.json (not an OCI archive)")
        index = json.load(f)
    for m in index.get("manifests", []):
        ref = (m.get("annotations") or {}).get("io.containerd.image.name")
        if ref:
            print(f"{ref} {m['digest']}")


def parse_json_or_str(v):
    try:
        x = json.loads(v)
    except json.JSONDecodeError:
        return [v]
    return [x] if isinstance(x, str) else x


def kv(v):
    k, sep, val = v.partition("=")
    if not sep:
        die(f"expected K=V, got {v!r}")
    return k, val


def main():
    ap = argparse.ArgumentParser(description="Write OCI image archives (see the top of this file).")
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("out")
    b.add_argument("spec")
    s = sub.add_parser("simple")
    s.add_argument("out")
    s.add_argument("--ref", required=True)
    s.add_argument("--layer", action="append", default=[])
    s.add_argument("--file", action="append", default=[])
    s.add_argument("--symlink", action="append", default=[])
    s.add_argument("--entrypoint")
    s.add_argument("--cmd", dest="cmd_")
    s.add_argument("--env", action="append", default=[])
    s.add_argument("--workdir")
    s.add_argument("--user")
    s.add_argument("--expose", action="append", default=[])
    s.add_argument("--label", action="append", default=[])
    lay = sub.add_parser("layer")
    lay.add_argument("out")
    lay.add_argument("dir")
    lay.add_argument("--prefix", default="")
    lay.add_argument("--owner")
    r = sub.add_parser("refs")
    r.add_argument("archive")
    a = ap.parse_args()

    if a.command == "build":
        with open(a.spec) as f:
            spec = json.load(f)
        build(a.out, spec, os.path.dirname(os.path.abspath(a.spec)))
    elif a.command == "simple":
        layers, names = {}, []
        for i, p in enumerate(a.layer):
            layers[f"l{i}"] = {"dir": p} if os.path.isdir(p) else {"tar": p}
            names.append(f"l{i}")
        if a.file or a.symlink:
            layers["files"] = {"files": dict(kv(x) for x in a.file),
                               "symlinks": dict(kv(x) for x in a.symlink)}
            names.append("files")
        if not names:
            die("no --layer, --file or --symlink")
        config = {"Env": a.env, "WorkingDir": a.workdir, "User": a.user,
                  "ExposedPorts": a.expose, "Labels": dict(kv(x) for x in a.label)}
        if a.entrypoint is not None:
            config["Entrypoint"] = parse_json_or_str(a.entrypoint)
        if a.cmd_ is not None:
            config["Cmd"] = parse_json_or_str(a.cmd_)
        build(a.out, {"layers": layers,
                      "images": [{"ref": a.ref, "layers": names, "config": config}]}, os.getcwd())
    elif a.command == "layer":
        owner = tuple(int(x) for x in a.owner.split(":")) if a.owner else None
        tmp = a.out + ".tmp"
        with open(tmp, "wb") as f:
            hw = HashingWriter(f)
            tar_writer(lambda tf: write_dir_layer(tf, a.dir, a.prefix, owner))(hw)
        os.replace(tmp, a.out)
        print(hw.digest())
    elif a.command == "refs":
        archive_refs(a.archive)


if __name__ == "__main__":
    main()
