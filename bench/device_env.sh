# Source at the start of a device command (after `source .device/meta/setup.sh`):
# installs this checkout in editable mode (no dependencies, no index: the device has torch and the
# carried wheels) and sets the GPU-machine defaults.
#   source .device/meta/setup.sh || exit 1; source bench/device_env.sh || exit 1
# The wheels setup.sh installed in an earlier call of this machine (it puts them on PYTHONPATH only
# in the call that carries them).
site=$HOME/.cache/msa-device/site
case ":${PYTHONPATH:-}:" in *":$site:"*) ;; *) [ -d "$site" ] && export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH} ;; esac
python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . >/tmp/msa-pip.log 2>&1 \
  || { tail -5 /tmp/msa-pip.log; return 1; }
export PYTHONUNBUFFERED=1 MSA_HOME=${MSA_HOME:-/tmp/msa-home}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p "$MSA_HOME"
python3 -c "import msa_agent.model.model, msa_agent.store" || return 1
