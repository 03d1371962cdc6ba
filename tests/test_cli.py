"""python -m common.train: the recipe from the flags, a real run with fit's files and output, and
every kind of bad input as one line on stderr, exit status 2, nothing written or overwritten.
(Under torchrun: tests/test_distributed.py.)"""
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import common
from common import cli
from common import train as ctrain

sys.path.insert(0, str(Path(__file__).parent))
from _train_helpers import one_thread_per_test  # noqa: E402,F401 (autouse fixture)

ROOT = Path(__file__).resolve().parent.parent
TINY = ["cifar_baseline", "--model-kwargs", '{"widths": [16, 32, 64], "convs_per_stage": 1}',
        "--data", "digits", "--mode", "smoke", "--batch-size", "64", "--no-amp"]


def recipe(*flags):
    return cli.build_recipe(cli.build_parser().parse_args(["cifar_resnet20", *flags]))


def test_default_recipe_is_notebook_02s_cifar_recipe():
    r = recipe()
    assert (r.epochs, r.batch_size, r.lr, r.momentum, r.weight_decay, r.schedule, r.gamma,
            r.nesterov, r.augment) == (182, 128, 0.1, 0.9, 1e-4, "multistep", 0.1, False, True)
    assert r.milestones == (91.0, 136.5)              # 32k and 48k of 64k iterations
    assert "He et al. 2015, sec. 4.2" in r.sources["lr"]


def test_lr_follows_the_global_batch_linearly_unless_given():
    r = recipe("--batch-size", "512", "--epochs", "40")
    assert r.lr == pytest.approx(0.4) and "scaled linearly" in r.sources["lr"]
    assert r.milestones == (20.0, 30.0)
    r = recipe("--batch-size", "512", "--lr", "0.1")
    assert r.lr == 0.1 and r.sources["lr"] == "command line (--lr)"


def test_every_recipe_field_has_a_flag_that_sets_it():
    fields = [f for f in dataclasses.fields(ctrain.Recipe) if f.name != "sources"]
    assert {f.name for f in fields} == set(cli.RECIPE_FLAGS)
    help_text = cli.build_parser().format_help()
    new = dict(epochs="7", batch_size="32", lr="0.3", momentum="0.8", weight_decay="0.001",
               schedule="exponential", milestones="2,5", gamma="0.5", warmup_epochs="1",
               warmup="constant", warmup_factor="0.2", label_smoothing="0.1",
               optimizer="rmsprop_tf", rmsprop_decay="0.8", rmsprop_eps="0.01",
               decay_epochs="2.4", no_weight_decay="norm,bias", lr_scales="layer1=0.1,fc=0.5",
               adam_betas="0.8,0.99", adam_eps="1e-6")
    flags = []
    for f in fields:
        flag = cli.RECIPE_FLAGS[f.name][0]
        assert flag in help_text, flag
        flags += [flag] + ([new[f.name]] if f.name in new else [])
    r = recipe(*[x for x in flags if x != "--nesterov"])            # nesterov: SGD only
    for f in fields:
        want = new.get(f.name)
        got = getattr(r, f.name)
        if f.name == "milestones":
            assert got == (2.0, 5.0)
        elif f.name == "no_weight_decay":
            assert got == ("norm", "bias")
        elif f.name == "lr_scales":
            assert got == (("fc", 0.5), ("layer1", 0.1))
        elif f.name == "adam_betas":
            assert got == (0.8, 0.99)
        elif want is None:                              # the boolean switches flip the default
            assert got is (not f.default) or f.name == "nesterov", f.name
        else:
            assert got == type(got)(want), f.name
    assert recipe("--nesterov").nesterov


def test_a_smoke_run_writes_fits_files_and_says_what_it_trains(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main([*TINY, "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"run folder {run}" in out and "command line (--batch-size)" in out
    assert "fit cifar_baseline" in out and "epoch   2/2" in out
    h = json.loads((run / ctrain.HISTORY).read_text())
    assert h["epoch"] == [1, 2] and h["world_size"] == 1 and h["batch_per_process"] == 64
    assert ctrain.load_checkpoint(run / ctrain.CHECKPOINT)["epoch"] == 2
    settings = json.loads((run / cli.SETTINGS).read_text())
    assert settings["--batch-size"] == 64 and settings["--data"] == "digits"
    # --resume with the same flags: the run is finished, nothing more to train
    before = (run / ctrain.CHECKPOINT).read_bytes()
    assert cli.main([*TINY, "--run-dir", str(run), "--resume"]) == 0
    assert (run / ctrain.CHECKPOINT).read_bytes() == before


def test_stop_and_resume_from_the_command_line_equals_a_straight_run(tmp_path):
    common.seed_everything(0)
    a, _ = cli.train([*TINY, "--run-dir", str(tmp_path / "a")])
    cli.train([*TINY, "--run-dir", str(tmp_path / "b"), "--stop-after-epochs", "1"])
    torch.manual_seed(123)
    b, _ = cli.train([*TINY, "--run-dir", str(tmp_path / "b"), "--resume"])
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def error_line(capsys, argv):
    """main(argv) must fail with exit status 2 and exactly one line on stderr."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("python -m common.train: error: "), err
    return err


@pytest.fixture
def finished_run(tmp_path):
    run = tmp_path / "run"
    assert cli.main([*TINY, "--run-dir", str(run), "--epochs", "1"]) == 0
    return run, {p.name: p.read_bytes() for p in run.iterdir()}


def test_an_existing_run_without_resume_is_refused_and_kept(finished_run, capsys):
    run, files = finished_run
    capsys.readouterr()
    err = error_line(capsys, [*TINY, "--run-dir", str(run), "--epochs", "1"])
    assert "holds an earlier run" in err and "--resume" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == files


def test_a_run_started_before_a_recipe_field_existed_resumes(finished_run, capsys):
    """command.json without a later Recipe field: the run had that field's old value."""
    run, _ = finished_run
    settings = json.loads((run / cli.SETTINGS).read_text())
    assert settings.pop("--no-weight-decay") == [] and "--weight-decay" in settings
    (run / cli.SETTINGS).write_text(json.dumps(settings))
    assert cli.main([*TINY, "--run-dir", str(run), "--epochs", "1", "--resume"]) == 0
    err = error_line(capsys, [*TINY, "--run-dir", str(run), "--epochs", "1", "--resume",
                              "--no-weight-decay", "norm"])
    assert "--no-weight-decay [] then, ['norm'] now" in err


def test_a_resume_with_other_settings_is_refused_by_flag_and_kept(finished_run, capsys):
    run, files = finished_run
    capsys.readouterr()
    err = error_line(capsys, [*TINY, "--run-dir", str(run), "--epochs", "1", "--resume",
                              "--lr", "0.3", "--no-augment"])
    assert "--lr 0.05 then, 0.3 now" in err and "--augment True then, False now" in err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == files


@pytest.mark.parametrize("argv, says", [
    (["resnet19"], "unknown model 'resnet19' (did you mean resnet18"),
    ([], "give a MODEL"),
    (["resnet18", "--data", "imagenet"], "unknown --data 'imagenet'"),
    (["resnet18", "--data", "imagefolder"], "--data imagefolder needs a folder"),
    (["resnet18", "--data", "imagefolder:/no/such/folder"], "There is no folder /no/such/folder"),
    (["resnet18", "--epochs", "two"], "argument --epochs: invalid int value: 'two'"),
    (["resnet18", "--schedule", "linear"], "argument --schedule: invalid choice"),
    (["resnet18", "--milestones", "200"], "milestones (200.0,) must be increasing epochs"),
    (["resnet18", "--model-kwargs", "{bad"], "--model-kwargs is not JSON"),
    (["resnet18", "--no-weight-decay", "norm,biases"], "no_weight_decay names ['biases']"),
    (["resnet18", "--data", "digits", "--image-size", "64"], "apply to --data imagefolder"),
    (["cifar_resnet20", "--data", "digits", "--model-kwargs", '{"widht": 2}'],
     "does not take the keyword 'widht'"),
])
def test_bad_input_is_one_line_and_exit_status_2(argv, says, capsys, tmp_path):
    err = error_line(capsys, [*argv, "--run-dir", str(tmp_path / "run")])
    assert says in err, err
    assert not (tmp_path / "run").exists()


def test_a_folder_without_images_is_one_line(tmp_path, capsys):
    for split in ("train", "val"):
        (tmp_path / "images" / split / "cat").mkdir(parents=True)
        (tmp_path / "images" / split / "cat" / "notes.txt").write_text("no image")
    err = error_line(capsys, ["resnet18", "--data", f"imagefolder:{tmp_path / 'images'}",
                              "--run-dir", str(tmp_path / "run")])
    assert "holds no images" in err and not (tmp_path / "run").exists()


def test_ddp_settings_are_checked_before_any_process_starts(monkeypatch, capsys, tmp_path):
    """As torchrun would set them (3 processes): the global batch must split evenly, --sync-bn
    needs GPUs, --device cuda a GPU, and DDP runs on CUDA or CPUs. All are refused before the
    process group would be joined (a test process joining it would wait for the others)."""
    for k, v in dict(RANK="0", LOCAL_RANK="0", WORLD_SIZE="3", MASTER_ADDR="127.0.0.1",
                     MASTER_PORT="1").items():
        monkeypatch.setenv(k, v)

    def join(*args, **kwargs):                       # an error, not a wait for 3 processes
        raise AssertionError("joined the process group")
    monkeypatch.setattr(torch.distributed, "init_process_group", join)
    err = error_line(capsys, [*TINY, "--run-dir", str(tmp_path / "a")])
    assert "The global batch 64 does not split evenly over 3 processes" in err
    err = error_line(capsys, [*TINY, "--batch-size", "63", "--sync-bn", "--device", "cpu",
                              "--run-dir", str(tmp_path / "b")])
    assert "--sync-bn needs CUDA GPUs" in err
    if not torch.cuda.is_available():                # no GPU, so no NCCL group to join
        err = error_line(capsys, [*TINY, "--batch-size", "63", "--device", "cuda",
                                  "--run-dir", str(tmp_path / "d")])
        assert "--device cuda, but this machine has no CUDA GPU" in err
        assert not (tmp_path / "d").exists()
    err = error_line(capsys, [*TINY, "--batch-size", "63", "--device", "mps",
                              "--run-dir", str(tmp_path / "e")])
    assert "CUDA GPUs (NCCL) or CPUs (gloo), not on 'mps'" in err
    monkeypatch.setenv("RANK", "1")                  # the other processes print nothing
    assert cli.main([*TINY, "--run-dir", str(tmp_path / "c")]) == 2
    assert capsys.readouterr().err == ""


def test_the_module_command_prints_one_line_and_no_warning():
    """``python -m common.train`` itself (a new process, so also no warning from running
    common/train.py as __main__): --help documents the flags, bad input is one line."""
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    done = subprocess.run([sys.executable, "-m", "common.train", "no_such_model"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "unknown model 'no_such_model'" in done.stderr


def test_help_documents_every_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    parser = cli.build_parser()
    for action in parser._actions:
        for flag in action.option_strings:
            assert flag in text and action.help, flag
    assert "torchrun --standalone --nproc_per_node" in text and "GLOBAL batch" in text


def test_adamw_from_the_command_line():
    r = recipe("--optimizer", "adamw", "--adam-betas", "0.9,0.95", "--no-weight-decay",
               "norm,bias,layer_scale")
    assert r.optimizer == "adamw" and r.adam_betas == (0.9, 0.95)
    assert r.no_weight_decay == ("norm", "bias", "layer_scale")
    with pytest.raises(cli.CommandError, match="--adam-betas"):
        recipe("--adam-betas", "0.9;0.95")



# --- transfer flags and the run folder: bad input blocks nothing (issue 31) -------------------

@pytest.mark.parametrize("flags, says", [
    (["--lr-scales", "layer9=0.1"], "'layer9'"),                       # no such part
    (["--lr-scales", "avgpool=0.1"], "'avgpool'"),                     # a part without parameters
    (["--freeze", "avgpool"], "'avgpool' holds no parameters"),
    (["--freeze", "fc,avgpool"], "'avgpool' holds no parameters"),
    (["--lr-scales", "fc=inf"], "finite"),
    (["--lr-scales", "fc=nan"], "lr_scales"),
    (["--freeze", "fc", "--lr-scales", "features.0=0.1"], "--lr-scales names features.0, which "
                                                          "--freeze leaves frozen"),
])
def test_bad_transfer_flags_are_one_line_and_the_corrected_command_runs(flags, says, capsys,
                                                                        tmp_path):
    run = tmp_path / "run"
    err = error_line(capsys, [*TINY, "--epochs", "1", "--run-dir", str(run), *flags])
    assert says in err, err
    assert not run.exists()                     # nothing written, command.json included
    assert cli.main([*TINY, "--epochs", "1", "--run-dir", str(run)]) == 0


def test_an_image_folder_with_a_file_that_is_not_an_image_is_one_line(tmp_path, capsys):
    from _train_helpers import write_folder

    root = write_folder(tmp_path / "images")
    (root / "train" / "a" / "x.jpg").write_text("not an image")
    run = tmp_path / "run"
    err = error_line(capsys, ["cifar_baseline", "--model-kwargs", '{"widths": [8]}', "--data",
                              f"imagefolder:{root}", "--image-size", "16", "--epochs", "1",
                              "--batch-size", "4", "--workers", "0", "--no-amp",
                              "--run-dir", str(run)])
    assert "x.jpg" in err and "not an image" in err, err
    assert not run.exists()


def test_a_run_folder_that_is_a_file_or_lies_under_one_is_one_line(tmp_path, capsys):
    afile = tmp_path / "notes.txt"
    afile.write_text("a file")
    for run, says in ((afile, "is a file"), (afile / "run", "lies under the file")):
        err = error_line(capsys, [*TINY, "--epochs", "1", "--run-dir", str(run)])
        assert says in err and str(afile) in err, err
    assert afile.read_text() == "a file"


def test_the_settings_of_a_run_that_never_finished_an_epoch_block_nothing(tmp_path, capsys):
    """A folder holding only command.json (a run stopped before its first checkpoint) is
    started afresh, with or without --resume, whatever its settings, and it says so."""
    run = tmp_path / "run"
    run.mkdir()
    (run / cli.SETTINGS).write_text(json.dumps({"MODEL": "cifar_baseline", "--lr": 9.0}))
    assert cli.main([*TINY, "--epochs", "1", "--run-dir", str(run)]) == 0
    assert "never finished an epoch" in capsys.readouterr().out
    assert json.loads((run / cli.SETTINGS).read_text())["--epochs"] == 1
    (run / ctrain.CHECKPOINT).unlink()
    (run / ctrain.HISTORY).unlink()
    assert cli.main([*TINY, "--epochs", "1", "--lr", "0.02", "--run-dir", str(run),
                     "--resume"]) == 0
    assert json.loads((run / cli.SETTINGS).read_text())["--lr"] == 0.02
    # with a checkpoint, other settings are still refused
    err = error_line(capsys, [*TINY, "--epochs", "1", "--run-dir", str(run), "--resume"])
    assert "--lr 0.02 then, 0.05 now" in err


def test_freeze_without_pretrained_warns_in_one_line(tmp_path, capsys):
    assert cli.main([*TINY, "--epochs", "1", "--run-dir", str(tmp_path / "r"), "--freeze"]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "warning" in err and "random" in err, err


def test_freeze_before_the_model_and_spaces_between_parts(tmp_path, capsys):
    model, _ = cli.train(["--freeze", *TINY, "--epochs", "1", "--run-dir", str(tmp_path / "a")])
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight",
                                                                           "fc.bias"]
    model, _ = cli.train([*TINY, "--epochs", "1", "--run-dir", str(tmp_path / "b"),
                          "--freeze", "fc, features.4", "--lr-scales", "features.4 = 0.5"])
    trainable = {n.split(".weight")[0].split(".bias")[0]
                 for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"fc", "features.4.0", "features.4.1"}


def test_an_image_that_fails_to_decode_while_training_is_one_line_and_leaves_nothing(tmp_path,
                                                                                     capsys):
    """A file that starts like a JPEG (so the first check passes it) but is not one: the error
    comes from the first batch, as one line, and the command.json just written is removed."""
    from _train_helpers import write_folder

    root = write_folder(tmp_path / "images")
    (root / "train" / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    run = tmp_path / "run"
    err = error_line(capsys, ["cifar_baseline", "--model-kwargs", '{"widths": [8]}', "--data",
                              f"imagefolder:{root}", "--image-size", "16", "--epochs", "1",
                              "--batch-size", "4", "--workers", "0", "--no-amp",
                              "--run-dir", str(run)])
    assert "broken.jpg cannot be read as an image" in err, err
    assert not (run / cli.SETTINGS).exists() and not (run / ctrain.CHECKPOINT).exists()
