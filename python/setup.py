"""Builds the memfabric Python package against an installed MemFabric.

    cmake --install build --prefix /opt/mf
    pip install --no-build-isolation ./python        (or: python3 setup.py build_ext)

The compiler and linker flags come from pkg-config (memfabric.pc and
memcache.pc; PKG_CONFIG_PATH may point at <prefix>/lib/pkgconfig), or from
MF_PREFIX=<prefix> when pkg-config is not available.  The extensions get
an rpath to the library folder, so no LD_LIBRARY_PATH is needed.  Nothing
is downloaded: the setuptools already installed builds it.
"""

import os
import shlex
import subprocess

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def pkg_config(pkg):
    """(include dirs, library dirs, libraries) of one pkg-config package."""
    prefix = os.environ.get("MF_PREFIX")
    if prefix:
        libdirs = [d for d in (os.path.join(prefix, "lib"),
                               os.path.join(prefix, "lib64"))
                   if os.path.isdir(d)]
        multiarch = os.path.join(prefix, "lib")
        for entry in (os.listdir(multiarch) if os.path.isdir(multiarch)
                      else []):
            path = os.path.join(multiarch, entry)
            if "-linux-" in entry and os.path.isdir(path):
                libdirs.append(path)
        return [os.path.join(prefix, "include")], libdirs, [pkg]
    try:
        out = subprocess.check_output(["pkg-config", "--cflags", "--libs",
                                       pkg], text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit("cannot find %s with pkg-config (set "
                         "PKG_CONFIG_PATH or MF_PREFIX): %s" % (pkg, exc))
    incs, libdirs, libs = [], [], []
    for flag in shlex.split(out):
        if flag.startswith("-I"):
            incs.append(os.path.normpath(flag[2:]))
        elif flag.startswith("-L"):
            libdirs.append(os.path.normpath(flag[2:]))
        elif flag.startswith("-l"):
            libs.append(flag[2:])
    return incs, libdirs, libs


def extension(name, pkg, more=()):
    incs, libdirs, libs = pkg_config(pkg)
    return Extension(
        "memfabric." + name,
        sources=[os.path.join("src", f + ".c") for f in (name,) + more],
        include_dirs=incs + ["src"],
        library_dirs=libdirs,
        libraries=libs + ["dl"],  # the CUDA driver, for device arrays
        runtime_library_dirs=libdirs,
        define_macros=[("_GNU_SOURCE", None)],
        extra_compile_args=["-std=c11", "-fvisibility=hidden"],
    )


os.chdir(HERE)
setup(
    name="memfabric",
    version="0.1.0",
    description="Python bindings of MemFabric and MemCache",
    packages=["memfabric", "memcache_hybrid", "memfabric_hybrid"],
    python_requires=">=3.9",
    ext_modules=[extension("_memfabric", "memfabric"),
                 extension("_trans", "memfabric"),
                 extension("_shm", "memfabric"),
                 extension("_memcache", "memcache", ("_memcache_stream",))],
)
