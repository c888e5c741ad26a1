"""Where a model's step spends its device time (GPU): the top kernels of one train step or
inference forward, grouped by name, fused path under bf16 autocast.

    python benchmarks/profile_model.py --model hyenadna-small-32k --L 32768 --B 8 [--kind infer] [--top 25]
"""

import argparse
import collections

import torch
from torch.profiler import ProfilerActivity, profile

from bench_models import MODELS


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="hyenadna-small-32k")
    ap.add_argument("--L", type=int, default=32768)
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--kind", default="train", choices=["train", "infer"])
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--ops", action="store_true", help="also the operators (and their input shapes) that launched the kernels")
    args = ap.parse_args()
    factory, _, checkpointing = MODELS[args.model]
    model = factory().cuda()
    ids = torch.randint(0, model.config.vocab_size, (args.B, args.L), device="cuda")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    run = torch.compile(model) if args.compile else model

    def step():
        if args.kind == "train":
            model.train()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = run(ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        else:
            model.eval()
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                run(ids)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    activities = [ProfilerActivity.CUDA] + ([ProfilerActivity.CPU] if args.ops else [])
    with profile(activities=activities, record_shapes=args.ops) as prof:
        step()
        torch.cuda.synchronize()
    by_name = collections.defaultdict(lambda: [0.0, 0])
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            by_name[e.name][0] += e.device_time_total
            by_name[e.name][1] += 1
    total = sum(v[0] for v in by_name.values())
    print(f"{args.model} {args.kind} L={args.L} B={args.B}: {total / 1e3:.2f} ms of kernels, "
          f"{sum(v[1] for v in by_name.values())} launches")
    for name, (us, n) in sorted(by_name.items(), key=lambda kv: -kv[1][0])[: args.top]:
        print(f"{us / 1e3:8.3f} ms {100 * us / total:5.1f}% {n:5d}x  {name[:110]}")
    if args.ops:
        print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_device_time_total", row_limit=args.top,
                                                                  max_name_column_width=40, max_shapes_column_width=70))


if __name__ == "__main__":
    main()
