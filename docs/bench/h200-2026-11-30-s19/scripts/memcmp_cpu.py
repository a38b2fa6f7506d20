"""Peak live tensor bytes of one inference forward (CPU, float32, inference_mode), project vs official MambaVision."""
import sys, weakref, collections, torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
sys.path[:0] = ["/tmp/memcmp/stub", "/tmp/off/MambaVision"]

class Track(TorchDispatchMode):
    def __init__(self):
        super().__init__(); self.refs = collections.Counter(); self.size = {}; self.live = 0; self.peak = 0; self.at = ""
        self.log = []
    def _dec(self, key):
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.live -= self.size.pop(key); del self.refs[key]
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                st = t.untyped_storage(); key = st.data_ptr()
                if not key: continue
                if key not in self.size:
                    self.size[key] = st.nbytes(); self.live += st.nbytes()
                    if self.live > self.peak:
                        self.peak = self.live; self.at = str(func)
                self.refs[key] += 1
                weakref.finalize(t, self._dec, key)
        return out

def peak(m, x):
    with torch.inference_mode():
        m(x)
        tr = Track()
        with tr:
            m(x)
    return tr.peak, tr.at

import vssm, timm  # noqa
which = sys.argv[1]
x = torch.randn(int(sys.argv[2]) if len(sys.argv) > 2 else 4, 3, 224, 224)
if which == "official":
    from mambavision.models import mamba_vision as mv
    m = mv.mamba_vision_T().eval()
else:
    m = timm.create_model("mambavision_t").eval()
p, at = peak(m, x)
print(which, f"peak live {p/2**20:.1f} MiB at {at}; params {sum(q.numel() for q in m.parameters())}")
