# NixOS host clawdinator-babelfish: registry entry "clawdinator-babelfish" in nix/instances.json.
{ config, lib, pkgs, ... }:

{
  imports = [ ./common.nix ];

  clawdinator.instanceName = "clawdinator-babelfish";
  networking.hostName = "clawdinator-babelfish";
}
