# NixOS host clawdinator-2: registry entry "clawdinator-2" in nix/instances.json.
{ config, lib, pkgs, ... }:

{
  imports = [ ./common.nix ];

  clawdinator.instanceName = "clawdinator-2";
  networking.hostName = "clawdinator-2";
}
