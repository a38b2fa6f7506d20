"""Top GPU kernels of Vim-Ti inference at 1248, batch 8, bf16 (torch.profiler, 3 steps)."""
import torch, timm
import vssm  # noqa: F401
from torch.profiler import profile, ProfilerActivity
m = timm.create_model("vim_tiny_patch16_224", img_size=1248).cuda().eval()
x = torch.randn(8, 3, 1248, 1248, device="cuda")
def step():
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        m(x)
for _ in range(3):
    step()
torch.cuda.synchronize()
with profile(activities=[ProfilerActivity.CUDA]) as p:
    for _ in range(3):
        step()
    torch.cuda.synchronize()
print(p.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=60))
