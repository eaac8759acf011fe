"""Train a small LeNet-class CNN on scikit-learn's bundled digits data and export it to ONNX.

Regenerates, next to this file:
  * ``digits_cnn.onnx``  -- float32 model, input ``input`` [N,1,8,8] in [0,1], output ``logits`` [N,10]
  * ``digits_test.npz``  -- held-out test split: ``input`` float32 [N,1,8,8], ``label`` int64 [N]

Usage::

    pip install torch==2.13.0        # only this script needs torch; the package never imports it
    python models/digits_cnn/train.py

Everything is seeded (split, init, shuffling) and torch runs single-threaded with deterministic
algorithms, so re-running reproduces the same weights on the same torch build.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

HERE = Path(__file__).resolve().parent
SEED = 0
TEST_SIZE = 0.25
OPSET = 17
IR_VERSION = 8  # IR 8 covers opset 17/18; onnx 1.23 would stamp a newer IR that onnxruntime rejects


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.fc1 = nn.Linear(64 * 2 * 2, 256)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv1(x))
        x = self.pool(self.relu(self.conv2(x)))  # 8x8 -> 4x4
        x = self.pool(self.relu(self.conv3(x)))  # 4x4 -> 2x2
        x = torch.flatten(x, 1)
        x = self.relu(self.fc1(x))
        return self.fc2(x)


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=TEST_SIZE, stratify=y, random_state=SEED)
    return x_train, x_test, y_train, y_test


def train(x_train: np.ndarray, y_train: np.ndarray, epochs: int) -> DigitsCNN:
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    model = DigitsCNN()
    xt = torch.from_numpy(x_train)
    yt = torch.from_numpy(y_train)
    batch = 64
    steps_per_epoch = (len(xt) + batch - 1) // batch
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, epochs=epochs, steps_per_epoch=steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)

    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        if (epoch + 1) % 10 == 0 or epoch == 0:
            print(f"epoch {epoch + 1:3d}/{epochs}  train loss {total / len(xt):.4f}")
    model.eval()
    return model


def _export_torchscript(model: DigitsCNN, dummy: torch.Tensor, path: Path) -> None:
    torch.onnx.export(
        model,
        (dummy,),
        str(path),
        dynamo=False,  # TorchScript exporter: no onnxscript needed, stable node/initializer names
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=OPSET,
        do_constant_folding=True,
        export_params=True,
    )


def export(model: DigitsCNN, path: Path) -> None:
    dummy = torch.zeros(1, 1, 8, 8, dtype=torch.float32)
    with warnings.catch_warnings():
        # torch >= 2.9 warns that the TorchScript exporter is legacy; it is still supported and
        # gives plain Conv/Gemm graphs with the parameter names as initializer names.
        warnings.simplefilter("ignore", DeprecationWarning)
        _export_torchscript(model, dummy, path)
    proto = onnx.load(str(path))
    proto.ir_version = IR_VERSION
    proto.producer_name = "onnx-share/models/digits_cnn/train.py"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)


def ort_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"input": x})[0]
    return float((logits.argmax(axis=1) == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out-dir", type=Path, default=HERE)
    args = ap.parse_args()

    x_train, x_test, y_train, y_test = load_split()
    print(f"train {len(x_train)}  test {len(x_test)}")
    model = train(x_train, y_train, args.epochs)
    with torch.no_grad():
        torch_acc = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())

    args.out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out_dir / "digits_cnn.onnx"
    npz_path = args.out_dir / "digits_test.npz"
    export(model, onnx_path)
    np.savez_compressed(npz_path, input=x_test.astype(np.float32), label=y_test.astype(np.int64))

    acc = ort_accuracy(onnx_path, x_test, y_test)
    print(f"torch test accuracy:       {torch_acc:.4f}")
    print(f"onnxruntime test accuracy: {acc:.4f}  ({len(y_test)} samples)")
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size} bytes) and {npz_path}")


if __name__ == "__main__":
    main()
