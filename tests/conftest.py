import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

# Tiny models gain nothing from intra-op threads, and CI's 2 cores are shared.
torch.set_num_threads(1)
