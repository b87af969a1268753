"""What the benchmarks record about the machine that measured them."""

from benchmarks.common import cpu_name


def test_cpu_name_reads_the_model_name_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC 9R14\n")
    assert cpu_name(info) == "AMD EPYC 9R14"


def test_cpu_name_falls_back_when_cpuinfo_is_missing_or_has_no_name(tmp_path):
    assert cpu_name(tmp_path / "absent")  # platform's answer: never empty
    blank = tmp_path / "cpuinfo"
    blank.write_text("processor\t: 0\nmodel name\t:\n")
    assert cpu_name(blank) == cpu_name(tmp_path / "absent")
