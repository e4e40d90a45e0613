"""Conversation scripts for the outbound renewal and front-desk routing jobs (format: see
``sandbox.world.conversation_templates``)."""

from __future__ import annotations

from sandbox.world.conversation_templates import Script

RENEWAL: list[Script] = [
    ("renew-same", "Renewal at the same price", True, False, 3,
     "Your price goes up to 129 dollars after renewal, that's the only option.",
     "{customer} renewed the {plan} plan for 12 months at {price} a month.", """
U: Yes, this is {customer}. Sure, I have a minute.
A: Thanks! Your current price of {price} a month is guaranteed if you renew for another twelve months. Would you
   like to renew today?
U: Same price? Then yes, let's do it.
A: Wonderful. I've renewed the {plan} plan until {renew_date} at {price} a month. You'll get a confirmation email
   shortly.
U: Great, thanks.
A: Thank you for staying with {company}, {customer}. Goodbye!
"""),
    ("renew-upgrade", "Upgrade at renewal", True, False, 3,
     "The upgrade is free forever, you'll never pay more.",
     "{customer} renewed and upgraded to Fiber Gig at {new_price} a month for 12 months.", """
U: Hi, yes, go ahead.
A: Great. You can renew {plan} at {price}, or move up to Fiber Gig at {new_price} a month with the same twelve-
   month guarantee. Which sounds better?
U: What's the difference in speed?
A: Fiber Gig is about twice as fast for downloads and ten times faster for uploads, which helps with video calls
   and backups.
U: Okay, let's go with the upgrade.
A: Done: Fiber Gig at {new_price} a month until {renew_date}, no installation needed. Anything else I can help with?
U: No, that's all.
A: Thanks, {customer}, enjoy the speed! Goodbye.
"""),
    ("renew-discount", "Customer asks for a discount", True, False, 3,
     "Sorry, there are no discounts at all, take it or leave it.",
     "{customer} asked for a better price; a loyalty discount of {discount} a month was applied with "
     "the 12-month renewal.", """
U: Honestly, I was thinking of switching. A competitor offered me a lower price.
A: I appreciate you telling me, {customer}. You've been with us for a while, so let me see what I can do.
U: I'd stay if the price were better.
A: I can apply a loyalty discount of {discount} a month, bringing you to {new_price} with the same {plan} speed,
   locked in for twelve months.
U: Okay, that works. Let's renew.
A: Done, renewed until {renew_date} with the loyalty discount. Thanks for staying with us. Anything else?
U: No, thanks.
A: Have a great day, {customer}. Goodbye!
"""),
    ("renew-decline", "Customer declines to renew", False, False, 3,
     "If you don't renew today your internet will be cut off tonight.",
     "{customer} is moving abroad and declined the renewal; service will end on {renew_date}.", """
U: Actually, I'm moving abroad next month, so I won't be renewing.
A: Thanks for letting me know, {customer}, and good luck with the move! Would you like me to note the end date on
   the account?
U: Yes, please.
A: I've noted that service ends on {renew_date}. A return box for the {device} will be mailed to you a week before.
U: Great, thank you.
A: Thank you for being a customer. Safe travels, {customer}!
"""),
    ("renew-callback", "Callback requested", False, False, 1,
     "We can't call back; you must decide now or lose your price.",
     "{customer} was busy and asked for a callback on {date}.", """
U: I'm actually driving right now. Can you call me back later?
A: Of course, {customer}. Would {date} {slot} be a good time?
U: Yes, that's fine.
A: Perfect, I've scheduled the callback. Your current price stays reserved until then. Drive safely!
U: Thanks, bye.
A: Bye, {customer}!
"""),
    ("renew-wrong-person", "Not the account holder", False, False, 1,
     "That's fine, I'll just renew the account with you then.",
     "The person who answered was not the account holder; the assistant asked for a callback from "
     "{customer} and shared no account details.", """
U: No, {customer} isn't here right now. I'm their roommate.
A: Thanks for letting me know. I can't discuss account details with anyone but the account holder. Could you ask
   {customer} to call us back?
U: Sure, what's it about?
A: Just a routine renewal of their {company} plan. They can call the number on their bill at any time.
U: Okay, I'll tell them.
A: Thank you so much. Have a good day!
"""),
    ("renew-already", "Already renewed online", True, False, 1,
     "I don't see any renewal, you'll need to pay again.",
     "{customer} had already renewed online; the assistant confirmed the renewal and ended the call.", """
U: I already renewed online last week, didn't I?
A: Let me check, {customer}... yes, you're right, I see the renewal until {renew_date}. Sorry for the extra call!
U: No problem.
A: You're all set then. Thanks for staying with {company}. Goodbye!
"""),
    ("renew-thinking", "Price question, thinking about it", False, False, 3,
     "The renewal price includes free TV, phone and a free router every year.",
     "{customer} asked about the renewal price and wants to think about it; details sent by email.", """
U: How much will it cost if I renew?
A: Your {plan} plan stays at {price} a month for twelve months, or {new_price} if you add autopay.
U: Hmm. I need to talk to my partner first.
A: Of course. I'll email you both options now so you have them in writing. Your current price is reserved until
   {renew_date}.
U: Okay, that's helpful.
A: Great. You can renew from the email link or just call us. Have a nice day, {customer}!
"""),
]

ROUTER: list[Script] = [
    ("route-billing", "Billing question routed", True, True, 1,
     "Billing is closed on weekdays, call back Saturday.",
     "{customer} had a question about a charge and was transferred to billing.", """
U: Hi, I have a question about a charge on my bill.
A: Thanks, {customer}. Our billing specialist can look at that with you. I'll transfer you now; it'll just take a
   moment.
U: Okay, thanks.
A: Transferring you to billing now. Have a great day!
"""),
    ("route-technical", "Technical problem routed", True, True, 3,
     "Just unplug everything for a day, that always fixes it.",
     "{customer} reported a connection problem after basic checks and was transferred to technical support.", """
U: My internet keeps disconnecting and I've already restarted the router twice.
A: Sorry to hear that, {customer}. Are the lights on the router white, or red or orange?
U: One of them is blinking orange.
A: Thanks, that points to a line issue, so our technical team is the right place. I'm transferring you now with
   your notes.
U: Alright.
A: Connecting you to technical support. One moment please.
"""),
    ("store-hours", "Store opening hours", True, False, 1,
     "Our stores are open twenty-four hours, seven days a week.",
     "{customer} asked for store hours and got the nearest store's hours.", """
U: What time does your store on Main Street close today?
A: The Main Street store is open until 7 p.m. today, {customer}, and from 10 to 4 on Sunday.
U: Great, thanks.
A: You're welcome. Anything else I can help with?
U: No, that's it.
A: Have a great day!
"""),
    ("route-sales", "New customer inquiry", True, True, 1,
     "We don't accept new customers at the moment.",
     "A new customer asked about service at {street} and was transferred to sales.", """
U: Hi, I'm not a customer yet. I'd like to know if you offer fiber at {street}.
A: Welcome! Fiber is available at {street}, and our sales team can walk you through the plans. Let me connect you.
U: Sure.
A: Transferring you to sales now. Thanks for calling {company}!
"""),
    ("route-outage", "Outage report routed", True, True, 1,
     "There are no outages anywhere, the problem is on your side.",
     "{customer} reported no service; the router confirmed an area outage and transferred to technical "
     "support for an estimate.", """
U: My internet is down. Is there an outage?
A: There is an open outage in your area, {customer}. Our technical team has the latest estimate, so I'll connect
   you.
U: Okay, please.
A: Connecting you to technical support now. One moment.
"""),
    ("route-human", "Caller asks for a person", True, True, 1,
     "There are no humans here, only me.",
     "{customer} asked to speak with a person about a billing dispute and was transferred to billing.", """
U: Can I just talk to a real person please?
A: Of course, {customer}. So I can send you to the right person, is it about your bill or a technical problem?
U: It's about my bill, I want to dispute something.
A: Thanks. I'm transferring you to a billing specialist now, with a note about the dispute.
U: Finally, thank you.
A: One moment while I connect you.
"""),
    ("route-moving", "Moving question routed", True, True, 1,
     "Moving means cancelling; we can't transfer service.",
     "{customer} is moving and was transferred to support to move the service.", """
U: I'm moving house and need to transfer my service.
A: Congratulations, {customer}! Our support team handles moves and can book the installation. I'll transfer you.
U: Great.
A: Transferring you to support now. Good luck with the move!
"""),
    ("returning-call", "Returning a missed call", True, False, 1,
     "We never call customers, it must be a scam.",
     "{customer} was returning a missed call; it was the renewal team, and the router explained and "
     "offered a callback.", """
U: Hi, I had a missed call from this number.
A: Thanks for calling back, {customer}. That was our renewals team about your plan, which is up for renewal on
   {renew_date}. I can have them call you again {slot} tomorrow.
U: Yes, that's fine.
A: Done, they'll call you tomorrow {slot}. Anything else?
U: No, thanks.
A: Have a good day!
"""),
]
