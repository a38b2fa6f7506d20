"""vssm: vision state-space backbones (Vim, VMamba, SiMBA) with Triton selective-scan kernels.

`kernels/` and `models/` live at the top level of the repository but install as
`vssm.kernels` and `vssm.models`, so the import namespace stays one package.
"""

from setuptools import find_packages, setup


def _sub(prefix: str, folder: str) -> list[str]:
    return [prefix] + [f"{prefix}.{p}" for p in find_packages(folder)]


packages = _sub("vssm", "vssm") + _sub("vssm.kernels", "kernels") + _sub("vssm.models", "models")
package_dir = {"vssm": "vssm", "vssm.kernels": "kernels", "vssm.models": "models"}

setup(
    name="vssm",
    version="0.1.0",
    description="Vision state-space model zoo: Vim, VMamba and SiMBA backbones for timm, "
    "with a Triton selective scan and a pure-PyTorch reference.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=packages,
    package_dir=package_dir,
    install_requires=[
        # Unpinned on purpose: a CPU-only torch wheel next to a CUDA-built torchvision breaks
        # `import torchvision` (and timm); letting pip pick both keeps them consistent.
        "torch>=2.4",
        "torchvision",
        "timm>=1.0",
        "safetensors",  # exported detection backbones (vssm.detection, tools/export.py)
        "triton; platform_system == 'Linux'",
        "numba",  # the compiled CPU scan (kernels/selective_scan/cpu.py); the op falls back without it
        "einops",
        "fvcore",
        "pyyaml",
        "tqdm",
        "matplotlib",
        "scikit-learn",
    ],
    extras_require={"dev": ["pytest>=7", "ruff", "onnx", "onnxscript", "onnxruntime"]},
    license="Apache-2.0",
)
