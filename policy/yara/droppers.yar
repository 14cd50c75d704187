/*
 * Shipped YARA rules (spec 13 §3 stage 5): shell droppers and Python reverse shells hidden in
 * model files. Each rule carries a severity and a one-line description; any match fails the
 * static scan.
 */
rule shell_dropper
{
  meta:
    severity = "high"
    description = "Downloads a script with curl or wget and pipes it into a shell"
  strings:
    $pipe = /(curl|wget)\s[^\n]{0,300}\|\s{0,4}(sudo\s+)?(ba|z|da)?sh\b/
    $dash_c = /(curl|wget)\s[^\n]{0,300}\b(ba)?sh -c\b/
    $sh_c = /\b(ba)?sh -c ["'][^\n]{0,300}(curl|wget)\s/
  condition:
    any of them
}

rule python_reverse_shell
{
  meta:
    severity = "critical"
    description = "Python reverse shell: socket, subprocess, os.dup2 and /bin/sh together"
  strings:
    $socket = "import socket"
    $popen = "subprocess.Popen"
    $call = "subprocess.call"
    $dup2 = "os.dup2"
    $sh = "/bin/sh"
    $bash = "/bin/bash"
    $pty = "pty.spawn"
  condition:
    $socket and $dup2 and ($popen or $call or $pty) and ($sh or $bash)
}

rule encoded_powershell
{
  meta:
    severity = "high"
    description = "PowerShell started with an encoded command"
  strings:
    $enc = /powershell(\.exe)?\s[^\n]{0,100}-(e|ec|en|enc|encodedcommand)\s+[A-Za-z0-9+\/=]{20,}/ nocase
  condition:
    $enc
}
