"""Shared test set-up: one torch thread (2-core CI machines), repo root on sys.path."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.set_num_threads(1)
