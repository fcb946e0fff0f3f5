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

    # The `fleet` CLI, built from this repository's workspace (fleet-skill), for the
    # heartbeat below. A host may set a prebuilt one instead.
    fleetPackage = lib.mkOption {
      type = lib.types.package;
      default = pkgs.rustPlatform.buildRustPackage {
        pname = "fleet";
        version = "0.1.0";
        src = lib.cleanSource ../..;
        cargoLock.lockFile = ../../Cargo.lock;
        cargoBuildFlags = [ "-p" "fleet-skill" "--bin" "fleet" ];
        # The tests need the AWS emulator and loopback servers; CI runs them.
        doCheck = false;
      };
      description = "The fleet CLI that sends this host's heartbeat.";
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

    environment.systemPackages = [ pkgs.awscli2 pkgs.jq cfg.fleetPackage ];

    # Host readiness: `fleet heartbeat` reports this host (EC2 instance and image from
    # IMDSv2, NixOS revision, the bot service's health, boot time) to the control API
    # every 60 s, first 30 s after boot; `/fleet status` shows READY from it.
    systemd.timers.clawdinator-heartbeat = {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnBootSec = "30s";
        OnUnitActiveSec = "60s";
        AccuracySec = "5s";
        # Spread a fleet booted together over a few seconds.
        RandomizedDelaySec = "5s";
      };
    };
    systemd.services.clawdinator-heartbeat = {
      description = "Report this host's readiness to the fleet control API";
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      path = [ cfg.fleetPackage pkgs.curl pkgs.jq pkgs.systemd ];
      environment = {
        FLEET_INSTANCE_NAME_FILE = "/etc/clawdinator/instance-name";
        FLEET_REVISION_FILE = "/run/current-system/configurationRevision";
        FLEET_HEALTH_COMMAND = "systemctl is-active clawdinator.service";
      };
      # The control API's URL is in the user data (infra/instances.tf: controlApiUrl),
      # read through IMDSv2 like the CLI reads the instance id. The token comes only
      # through systemd's credential directory, never the environment or a command line.
      script = ''
        imds=http://169.254.169.254/latest
        imds_token=$(curl -sSf -m 5 -X PUT "$imds/api/token" \
          -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')
        FLEET_CONTROL_URL=$(curl -sSf -m 5 -H "X-aws-ec2-metadata-token: $imds_token" \
          "$imds/user-data" | jq -er .controlApiUrl)
        unset imds_token
        export FLEET_CONTROL_URL
        export FLEET_CONTROL_TOKEN_FILE="$CREDENTIALS_DIRECTORY/control-token"
        exec fleet heartbeat
      '';
      serviceConfig = {
        Type = "oneshot";
        # No account of its own, and read access to the token alone (root-only in
        # /run/agenix; systemd hands this unit a copy).
        DynamicUser = true;
        LoadCredential = [ "control-token:${cfg.controlTokenPath}" ];
        TimeoutStartSec = "50s";
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        NoNewPrivileges = true;
        PrivateTmp = true;
        PrivateDevices = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        ProtectKernelTunables = true;
        ProtectKernelModules = true;
        ProtectKernelLogs = true;
        ProtectControlGroups = true;
        ProtectClock = true;
        ProtectHostname = true;
        ProtectProc = "invisible";
        RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_UNIX" ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [ "@system-service" "~@privileged" "~@resources" ];
        UMask = "0077";
      };
    };

    system.stateVersion = "25.05";
  };
}
