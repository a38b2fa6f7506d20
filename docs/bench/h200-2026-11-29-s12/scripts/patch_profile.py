import re, sys
p = ".official/profile_models.py"
s = open(p).read()
targets = sys.argv[1]
s = re.sub(r"^TARGETS = .*$", "TARGETS = " + targets + "\n" + 'MODELS["MambaVision-T infer"] = MODELS["MambaVision-T"]\nMODELS["Vim-S infer"] = MODELS["Vim-S"]', s, flags=re.M)
s = re.sub(r"^SIDES = .*$", 'SIDES = ("project", "official_vim", "official_vmamba", "official_mambavision")', s, flags=re.M)
s = s.replace('off = by.get((next(s for s in MODELS[label] if s.startswith("official")), label))',
              'off = by.get((next((s for s in MODELS[label] if s.startswith("official")), None), label))')
open(p, "w").write(s)
