/* Private keys shipped inside a model file (spec 13 §3 stage 5). */
rule private_key_pem
{
  meta:
    severity = "high"
    description = "PEM private key (RSA, EC, DSA, PKCS#8 or OpenSSH) embedded in the file"
  strings:
    $rsa = "-----BEGIN RSA PRIVATE KEY-----"
    $ec = "-----BEGIN EC PRIVATE KEY-----"
    $dsa = "-----BEGIN DSA PRIVATE KEY-----"
    $pkcs8 = "-----BEGIN PRIVATE KEY-----"
    $pkcs8_enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----"
    $openssh = "-----BEGIN OPENSSH PRIVATE KEY-----"
  condition:
    any of them
}
