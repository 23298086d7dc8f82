"""Your own run: an experiment whose checkpoints come from a plain PyTorch training loop
(experiments.*.checkpoints) is visualized, measured and drawn like a trained one."""

import pytest
import torch
import torchvision

from conftest import train_settings, write_subset
from featevo import train
from featevo.checkpoint import load_checkpoint
from snakemake_helpers import tiny_with


def plain_loop(folder, epochs: int, lightning_at: int | None = None):
    """A user's own training: torchvision's ResNet-18, a few SGD steps an epoch, a state
    dict per epoch as torch.save writes it (a Lightning checkpoint at ``lightning_at``)."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for epoch in range(epochs + 1):
        if epoch:
            for _ in range(2):
                x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 4, (8,))
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
        state = model.state_dict()
        if epoch == lightning_at:  # LightningModule.net = model: keys net.*, under state_dict
            state = {"epoch": epoch, "state_dict": {f"net.{k}": v for k, v in state.items()}}
        torch.save(state, folder / f"epoch_{epoch}.pt")
    return model


@pytest.mark.slow  # a whole DAG (minutes on 2 cores): the full tier
def test_an_imported_run_gives_its_figures_and_tables(tmp_path):
    plain_loop(tmp_path / "runs" / "mine", epochs=2, lightning_at=2)
    tiny_with(tmp_path, (
        "run_name: own\n"
        "model: {arch: resnet18, width_divisor: 1, pool_size: 7}\n"
        "judge: {arch: resnet18, epochs: 1}\n"
        "experiments:\n"
        "  scratch: {init: random, epochs: 1}\n"
        "  mine: {checkpoints: 'runs/mine/epoch_{epoch}.pt', epochs: 2, figure: fig_mine, table: table_mine}\n"
        "methods: {saliency: {enabled: false}, occlusion: {enabled: false}, inversion: {enabled: false}}\n"
        "visualize: {units: ['layer3.1.conv2:7']}\n"))
    run = tmp_path / "results" / "own"
    for name in ("fig_mine.png", "top_mine.png", "evolution_mine.gif", "metrics_mine_seed0.png", "units_mine.png"):
        assert (run / "figures" / name).stat().st_size > 0, name
    assert "| 2 |" in (run / "tables" / "table_mine.md").read_text()
    assert "mine" in (run / "tables" / "claims.md").read_text()
    # nothing was trained for it: its checkpoints are the loop's, epoch 0 included
    ckpt = load_checkpoint(run / "train" / "mine" / "seed0" / "epoch_002.pt")
    assert ckpt["metrics"]["init"].startswith("imported from runs/mine/epoch_2.pt")
    assert not (run / "train" / "mine" / "seed1").exists()
    assert not list((run / "train" / "mine" / "seed0").glob("*.optim.pt"))


def test_a_checkpoint_that_does_not_fit_is_named_with_its_first_mismatch(tmp_path):
    data = write_subset(tmp_path / "data", n_train=6, n_val=6)
    torch.save(torchvision.models.resnet34(num_classes=3).state_dict(), tmp_path / "r34.pt")
    args = ["import", "--source", str(tmp_path / "r34.pt"), "--epoch", "1", "--data", str(data), "--out",
            str(tmp_path / "e.pt"), "--metrics", str(tmp_path / "e.json"),
            "--seed", "0", "--settings", train_settings(model={"arch": "resnet18", "width_divisor": 1,
                                                                "pool_size": 7})]
    with pytest.raises(SystemExit, match=r"r34.pt does not fit model.arch: it has layer1.2.conv1.weight "
                                         r"\(64, 64, 3, 3\)"):
        train.main(args)
    torch.save(torchvision.models.resnet18(num_classes=5).state_dict(), tmp_path / "r34.pt")  # 5 classes, not 3
    with pytest.raises(SystemExit, match=r"its fc.weight is \(5, 512\), the config's network has \(3, 512\)"):
        train.main(args)
    torch.save({"optimizer": {}}, tmp_path / "r34.pt")
    with pytest.raises(SystemExit, match="holds no state dict"):
        train.main(args)
