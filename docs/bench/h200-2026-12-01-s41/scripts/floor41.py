"""(CPU) The torch ops of one Vim block inference forward alone (norm, in_proj, four empties, the addmm): the floor split41.py is read against."""
import time, torch
torch.set_num_threads(1)
x = torch.randn(1, 17, 192); w_in = torch.randn(768, 192, dtype=torch.bfloat16); w_out = torch.randn(192, 768, dtype=torch.bfloat16)
nw = torch.ones(192)
y = torch.randn(17, 768, dtype=torch.bfloat16)
def f():
    with torch.inference_mode():
        h = torch.rms_norm(x, (192,), nw, 1e-5).to(torch.bfloat16)
        xz = torch.nn.functional.linear(h, w_in)
        a = xz.new_empty((1, 17, 2, 384)); b = xz.new_empty((1, 2, 24, 17)); c = xz.new_empty((1,2,384,17)); d = xz.new_empty((1, 17, 2, 384))
        out = torch.addmm(x.reshape(17, 192), y.float(), w_out.float().t())
        return out
for _ in range(50): f()
res = []
for r in range(80):
    t = time.perf_counter()
    for _ in range(50): f()
    res.append((time.perf_counter() - t) / 50 * 1e6)
print(f"floor: min {min(res):.1f} us")
