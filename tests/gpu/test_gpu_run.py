"""The GPU path, for real: runs where a CUDA device is visible (`make test` on a GPU machine)."""

import pytest

from pytest_inferlab.record.record import load_record

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device visible to torch on this machine"),
]


def test_dummy_model_on_gpu_records_cuda_memory_and_bf16(pytester):
    pytester.makeconftest("""
import pytest

@pytest.fixture
def workload_overrides():
    return {"count": 4, "output_tokens": 16}
""")
    pytester.makepyfile(test_suite="""
import pytest

@pytest.mark.parametrize("batch_size", [1, 4])
def test_latency(lab, model, workload, batch_size):
    lab.measure(model, workload, batch_size=batch_size)
""")
    result = pytester.runpytest_subprocess("--inferlab-gpu=0", "--inferlab-model=dummy:smollm2-135m",
                                           "--inferlab-rounds=2", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    [run] = (pytester.path / ".inferlab" / "runs").iterdir()
    for rec in map(load_record, run.glob("*.json")):
        assert rec["engine"]["dtype"] == "bfloat16" and rec["engine"]["device"]["kind"] == "cuda"
        assert rec["environment"]["device_name"] == torch.cuda.get_device_name(0)
        m = rec["measurements"]
        assert m["peak_mem_bytes"]["value"] >= m["model_bytes"]["value"]
        assert m["peak_mem_reserved_bytes"]["value"] >= m["peak_mem_bytes"]["value"]
        assert ("energy_j" in m) or rec["absent"]["energy_j"].startswith(("NVML", "pynvml"))
