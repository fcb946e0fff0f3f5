# NixOS host clawdinator-1: registry entry "clawdinator-1" in nix/instances.json.
{ config, lib, pkgs, ... }:

{
  imports = [ ./common.nix ];

  clawdinator.instanceName = "clawdinator-1";
  networking.hostName = "clawdinator-1";
}
