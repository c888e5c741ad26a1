"""Device timing shared by the benchmark scripts."""

import statistics

import torch


def median_ms(fn, warmup: int = 5, reps: int = 30) -> float:
    """Median milliseconds of ``fn()`` over ``reps`` CUDA-event timed calls after warm-up."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def capture_graph(fn) -> torch.cuda.CUDAGraph:
    """``fn()`` captured in a CUDA graph (after three warm-up calls on a side stream)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def graph_median_ms(fn, reps: int = 30) -> float:
    """Median replay time of ``fn()`` captured in a CUDA graph: device time without host overhead."""
    return median_ms(capture_graph(fn).replay, reps=reps)
