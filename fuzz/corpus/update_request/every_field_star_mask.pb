
¾
1partners/acme/environments/production/contactInfo#
oncall@acme.exampleAcme on-call'
pager@acme.example+1 (650) 253-0000E
oncall+pager@acme.example
Night desk+44 20 7031 3000"
zh-Hant-TW"
integrations@acme.example"en*A
Merchants@Example.CO.ukDÃ©veloppeurs+41 44 668 18 00"pt-BR2
escalations@acme.example:$
support@acme.exampleAcme SupportBN*
America/Los_Angeles08:00"20:00 
Europe/Zurich22:00"02:00
*