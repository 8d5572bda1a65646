from setuptools import find_packages, setup

setup(
    name="scoresde",
    version="0.1.0",
    description="Score-based generative modelling with stochastic differential equations",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["sde_lib*", "samplers*", "likelihood*", "models*", "scoredata*",
                                    "plotting*", "evaluation*", "training*", "workflows*", "configs*",
                                    "quality*", "experiments*", "benchmarks*"]),
    py_modules=["main"],
    install_requires=[
        "torch>=2.0",
        "torchdiffeq>=0.2.3",
        "torchsde>=0.2.5",
        "numpy",
        "scipy",
        "absl-py",
        "ml-collections",
        "tqdm",
        "Pillow",
        "matplotlib",
        "scikit-learn",
        "tensorboard",
    ],
    extras_require={"test": ["pytest>=7", "pytest-xdist>=3"], "bench": ["diffusers"]},
)
