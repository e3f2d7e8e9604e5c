
´
1partners/acme/environments/production/contactInfo#
oncall@acme.exampleAcme on-call'
pager@acme.example+1 (650) 253-0000"
integrations@acme.example"en2
escalations@acme.example:$
support@acme.exampleAcme SupportBN*
America/Los_Angeles08:00"20:00 
Europe/Zurich22:00"02:00S
name
etag
operational_support.windows
bogus
*
alert_contacts
alert_contacts