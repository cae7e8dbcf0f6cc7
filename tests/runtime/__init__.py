"""Tier 4 harness: the kubelet path through a real container runtime.

A private containerd 1.6 (`containerd.Containerd`) whose CRI plugin runs our CNI executables,
driven over CRI like kubelet (`cri.CRIClient`), with a local pause image built from
busybox-static (`image`), a pass-through recorder of what the runtime hands a plugin
(`recorder`) and process / mount / netns clean-up that touches only what we started (`procs`).
Prerequisites: `tests/runtime/install.sh`.
"""
