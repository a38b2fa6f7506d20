"""Stop 30: where the host time of a Vim-Ti 1248 (batch 8) inference step goes (cProfile over 20 steps)."""
import cProfile, os, pstats, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), ".official"))
os.environ.setdefault("OFFICIAL_DIR", "/tmp/official")
import torch, timm
import vssm  # noqa
import _env
name, px, bs = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else ("vim_tiny_patch16_224", 1248, 8)
model = timm.create_model(name, img_size=px).cuda()
step = _env.make_step(model, "infer", bs, px)
for _ in range(5):
    step()
torch.cuda.synchronize()
# host time alone: the steps without waiting (queue fills; measure launch rate with a tiny sync at the end)
t = time.perf_counter()
for _ in range(10):
    step()
host = (time.perf_counter() - t) / 10 * 1e3
torch.cuda.synchronize()
wall = (time.perf_counter() - t) / 10 * 1e3
print(f"host (enqueue) {host:.2f} ms/step, wall {wall:.2f} ms/step")
pr = cProfile.Profile()
pr.enable()
for _ in range(20):
    step()
pr.disable()
torch.cuda.synchronize()
st = pstats.Stats(pr)
st.sort_stats("tottime").print_stats(35)
st.sort_stats("cumulative").print_stats(45)
