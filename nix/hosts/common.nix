# Shared NixOS configuration of every clawdinator host.
#
# Each nix/hosts/<host>.nix imports this file and sets `clawdinator.instanceName`
# (its key in nix/instances.json) and `networking.hostName` (its `host` field).
# Anything that differs between hosts belongs in the host file, not here.
{ config, lib, pkgs, modulesPath, ... }:

let
  cfg = config.clawdinator;
in
{
  imports = [ "${modulesPath}/virtualisation/amazon-image.nix" ];

  options.clawdinator = {
    instanceName = lib.mkOption {
      type = lib.types.strMatching "[a-z0-9][a-z0-9-]{0,62}";
      description = "Registry id of this host: its key in nix/instances.json.";
    };

    # The fleet CLI reads the control API token from this file. agenix decrypts it
    # at boot into /run/agenix (tmpfs, root-only), so it is never in the Nix store.
    controlTokenPath = lib.mkOption {
      type = lib.types.str;
      default = "/run/agenix/clawdinator-control-token";
      description = "Path of the decrypted control API token used by the fleet CLI.";
    };
  };

  config = {
    # The bot and the fleet CLI read who they are from here instead of guessing it
    # from the hostname or the EC2 metadata service.
    environment.etc."clawdinator/instance-name".text = "${cfg.instanceName}\n";
    environment.etc."clawdinator/control-token-path".text = "${cfg.controlTokenPath}\n";

    # User data carries a JSON document (instance id, bootstrap bucket and prefix,
    # control API URL; see infra/instances.tf), not a NixOS configuration, so the
    # stock amazon-init service must not try to `nixos-rebuild` from it.
    virtualisation.amazon-init.enable = false;

    time.timeZone = "UTC";

    # No inbound SSH: the security group opens no port and nothing listens.
    services.openssh.enable = false;

    nix.settings = {
      experimental-features = [ "nix-command" "flakes" ];
      auto-optimise-store = true;
    };
    nix.gc = {
      automatic = true;
      dates = "weekly";
      options = "--delete-older-than 14d";
    };

    environment.systemPackages = [ pkgs.awscli2 pkgs.jq ];

    system.stateVersion = "25.05";
  };
}
